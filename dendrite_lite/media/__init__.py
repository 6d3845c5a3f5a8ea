"""The media repository: uploaded files, thumbnails, cached copies of other servers' media.

Modules, bottom up (each has one job):
- `store.FileStore`: the files. Content-addressed (`content/ab/cd/<sha256>`), written to `tmp/`
  then fsynced and renamed, so a file under `content/` is always complete.
    `await files.receive(chunks, max_bytes=..., idle_timeout=...) -> Received` (in tmp/; raises
    `store.TooLarge` / `store.BodyTimeout`, leaving nothing behind), `await files.install(r)`,
    `files.lock(sha256)`, `files.path_for(sha256) -> Path`, `await files.delete(sha256)`.
    Code outside the repository only reads (`path_for`): files and rows change together there.
- `storage/media.py`: the rows. `MediaRow` (server_name, media_id, sha256, size, content_type,
  upload_name, user_id, created_ts, expires_ts, authenticated, quarantined, last_access_ts) keyed
  by (server_name, media_id): our uploads under our server name, cached remote media under its
  origin's. `ThumbnailRow` per (media, width, height, method, animated).
- `repository.MediaRepository` (`services().media.repo`): files and rows together, in the order
  that keeps them consistent. The API other media code builds on:
    `await repo.get(server_name, media_id) -> MediaRow | None`
    `await repo.store(MediaRow(server_name=origin, media_id=..., sha256=None, size=None,
        content_type=..., upload_name=..., user_id=None, created_ts=now_ms(),
        authenticated=True), chunks, max_bytes=..., idle_timeout=...) -> MediaRow`
        (a remote copy: replaces any older row of that URI; raises store.TooLarge)
    `repo.path(row.sha256) -> Path` (open it for reading; Range is the API layer's)
    `await repo.thumbnails(server_name, media_id)`, `await repo.add_thumbnail(...)`
    `await repo.touch(server_name, media_id)` (last_access_ts), `await repo.delete(...)` (the
    row, its thumbnails, and every file no other row uses; a per-hash lock keeps it from
    unlinking a file an upload of the same bytes is naming at that moment).
- `thumbnailer`: Pillow, blocking (JPEG draft decoding, EXIF orientation, pixel limit, formats
  whitelist), imported only by the pool's threads; `thumbnail_sizes`: the standard sizes, the
  thumbnailable types, results and errors, without Pillow; `thumbnails.Thumbnails`: which
  thumbnail answers a request, made in a bounded thread pool and cached
  (`await thumbnails.choose(row, w, h, method, animated) -> ThumbnailRow | None`).
- `names`: `check_mxc(server_name, media_id)` (400 M_INVALID_PARAM), `sanitise_file_name`.
- `service.MediaService` (`services().media`): upload, create + PUT, download, thumbnail, config.
  Remote media: `MediaService(..., fetch_remote=fn)` where
  `fn(server_name, media_id, timeout_s) -> MediaRow | None` fetches over federation and stores
  through `repo.store` (it is asked only when no row exists).
- `remote.RemoteMedia`: that `fetch_remote`, over federation/media.py (the Matrix 1.11 federation
  endpoints, else the legacy one), one fetch per mxc:// URI however many ask (`single_flight`).
- `quota.UploadQuota` (media.max_user_bytes), `admin.MediaAdmin`: quarantine, delete,
  purge-remote and totals for `dendrite-lite media` and the admin API.
- `preview.UrlPreviews` (preview_url): `preview_guard` (public addresses only, checked on the
  address connected to), `preview_html` (OpenGraph), answers cached in url_previews.
"""
