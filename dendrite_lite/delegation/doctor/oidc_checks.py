"""Whether each OpenID Connect provider of [[oidc_providers]] can sign users in, for the
configured server: its discovery document answers and names the configured issuer (a
Keycloak issuer missing its /realms/<realm>, a trailing slash too many), and its signing keys
(JWKS) can be fetched. The provider's own client does the fetching (users/oidc.py), with its
ca_file, so the doctor sees what a sign-in would.

Otherwise a wrong issuer shows only when a family member presses "Sign in with ..." and gets
an error page.
"""

from __future__ import annotations

from dendrite_lite.config import Config, OidcProviderConfig
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.errors import MatrixError
from dendrite_lite.users.oidc import OidcProvider, OidcSetupError, callback_url

__all__ = ["oidc_findings"]

AREA = "sso"


async def oidc_findings(config: Config) -> list[Finding]:
    callback = callback_url(config.public_baseurl)
    return [await _check(p, callback) for p in config.oidc_providers]


async def _check(config: OidcProviderConfig, callback: str) -> Finding:
    check = f"sso.oidc.{config.idp_id}"
    try:
        provider = OidcProvider(config, callback)
    except OidcSetupError as e:
        return Finding(check, AREA, Status.FAIL, f"{e}.", "Fix the path, or remove the key.")
    try:
        metadata = await provider.metadata()
        keys = (await provider.jwks()).get("keys")
    except MatrixError as e:
        source = "its discovery document" if config.discovery else "its endpoints"
        return Finding(
            check, AREA, Status.FAIL,
            f"{config.idp_name} ({config.issuer}) cannot sign anyone in: {source} or keys: "
            f"{e.error.removeprefix('The sign-in server could not confirm the sign-in ')}.",
            "Set issuer exactly as the provider names itself (its"
            " /.well-known/openid-configuration shows it; Keycloak's ends in /realms/<realm>),"
            " check that this machine reaches it, and set ca_file if its certificate comes from"
            " your own CA.",
        )
    finally:
        await provider.aclose()
    if not keys:
        return Finding(check, AREA, Status.FAIL,
                       f"{config.idp_name}'s JWKS ({metadata['jwks_uri']}) holds no keys: no ID"
                       " token it signs can be verified.", "Check the provider's signing keys.")
    return Finding(
        check, AREA, Status.OK,
        f"{config.idp_name} ({config.issuer}) answers its discovery document with this issuer"
        f" and {len(keys)} signing key(s). Its client must allow the redirect URI {callback}.",
    )
