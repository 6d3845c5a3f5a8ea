"""Application services (bridges): registration files, their authentication, and the
transactions, queries and pings between the homeserver and each AS (issue 19)."""
