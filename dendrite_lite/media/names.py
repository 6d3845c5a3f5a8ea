"""What a client may name: media ids and server names of mxc:// URIs, upload file names.

Spec (content_repo.md §Security considerations): the media-id segment MUST be only `A-Za-z0-9`,
`_` and `-`, and the server-name segment a valid server name: a whitelist, so no encoding trick
(`%2e%2e%2f`, overlong UTF-8) gets a `../` through. Files are named by their hash anyway
(media/store.py), so a bad id can never reach the file system; refusing it early is the spec's
belt to those braces.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from dendrite_lite.config import is_valid_server_name
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["check_mxc", "new_media_id", "sanitise_file_name", "MAX_FILE_NAME_CHARS"]

_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Long enough for anything a person names a file; a header stays small.
MAX_FILE_NAME_CHARS = 255


def new_media_id() -> str:
    # 24 random url-safe characters (144 bits): unguessable, like Synapse's.
    return secrets.token_urlsafe(18)


def check_mxc(server_name: str, media_id: str) -> None:
    """400 M_INVALID_PARAM for a server name or media id an mxc:// URI may not have."""
    if not is_valid_server_name(server_name):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid server name in media URI")
    if not _MEDIA_ID.fullmatch(media_id):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid media ID")


def sanitise_file_name(name: str | None) -> str | None:
    """The name to keep for an upload: no directories, no control characters, no quotes or
    backslashes (which would break a Content-Disposition header), at most MAX_FILE_NAME_CHARS.
    None when nothing usable is left."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        c for c in name if unicodedata.category(c)[0] != "C" and c not in "\"'"
    ).strip()
    kept = kept[:MAX_FILE_NAME_CHARS]
    if kept in ("", ".", ".."):
        return None
    return kept
