"""Backups of a whole server (database, media files, signing key, config, ACME account and
certificate) taken while it runs, restores that check what they restore, and the server's own
scheduled backups. See create.py for what a backup directory holds."""
