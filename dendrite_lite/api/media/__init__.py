"""Content repository endpoints (content-repo.yaml, authed-content-repo.yaml): uploads, and
downloads and thumbnails under both /_matrix/client/v1/media and the legacy /_matrix/media."""
