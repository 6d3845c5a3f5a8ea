-- 0039: who an OpenID Connect provider's user is here (storage/sso_subjects.py, users/oidc.py).
--
-- sso_subjects: the account an (identity provider, subject) pair signs in as. `sub` is the
-- provider's stable id for its user (OIDC Core §5.7: never reassigned), so a user who renames
-- themselves there (preferred_username) still lands on the same account; the localpart claim is
-- read only at the first sign-in, which makes the row. One account may be reachable from
-- several providers.
CREATE TABLE sso_subjects (
    idp_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (idp_id, subject)
) WITHOUT ROWID;
CREATE INDEX sso_subjects_user ON sso_subjects (user_id);
