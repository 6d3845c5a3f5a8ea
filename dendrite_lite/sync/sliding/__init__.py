"""Simplified sliding sync (MSC4186), the sync Element X and other matrix-rust-sdk clients use.

- request.py: the request body and query string, checked into dataclasses (errors name the field);
- required_state.py: which state a room config asks for ($LAZY, $ME, `*`);
- connection.py: what a connection (user, device, conn_id) has been sent, per `pos`, kept in the
  database (storage/sliding_sync.py) so it survives a restart;
- lists.py: the user's room list by recency, the list filters and the ranges;
- rooms.py: each room's response (full or delta);
- extensions.py: to_device, e2ee, account_data, receipts, typing;
- thread_extensions.py: thread subscriptions (MSC4308) and thread updates (MSC4360);
- service.py: the long-poll on /sync's notifier, tying the above together.
"""
