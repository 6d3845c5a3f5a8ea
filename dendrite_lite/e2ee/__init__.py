"""End-to-end encryption services (client-server-api/modules/end_to_end_encryption.md,
send_to_device.md): the server stores and relays keys and messages it cannot read.

- keys.py, key_upload.py: device, one-time and fallback keys (/keys/upload, /query, /claim);
- cross_signing.py: cross-signing keys and signatures, and who sees which;
- device_lists.py: the device list stream, its /sync wake-ups and `changed`/`left`;
- to_device.py: /sendToDevice and delivery until acknowledged;
- key_backup.py: server-side key backups (/room_keys);
- sync_extensions.py: the /sync fields all of the above add.

Other servers' users (issue 13 item 5) plug in through the seams RemoteKeys (keys.py),
RemoteToDevice (to_device.py) and DeviceListService's on_local_change hook.
"""
