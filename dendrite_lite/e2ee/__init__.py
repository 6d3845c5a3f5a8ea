"""End-to-end encryption services (client-server-api/modules/end_to_end_encryption.md,
send_to_device.md): the server stores and relays keys and messages it cannot read.

- keys.py, key_upload.py: device, one-time and fallback keys (/keys/upload, /query, /claim);
- cross_signing.py: cross-signing keys and signatures, and who sees which;
- device_lists.py: the device list stream, its /sync wake-ups and `changed`/`left`;
- to_device.py: /sendToDevice and delivery until acknowledged;
- key_backup.py: server-side key backups (/room_keys);
- sync_extensions.py: the /sync fields all of the above add.

Other servers' users (server-server-api.md §Device Management, §End-to-End Encryption):
- remote_keys.py: their keys for /keys/query and /keys/claim (keys.py's RemoteKeys), from the
  cache below when it may answer, else from their servers;
- remote_device_lists.py: the cache of their device lists, kept by their servers' EDUs;
- federation_answers.py: what other servers ask about our users (/user/devices, /user/keys/*).
Our users' changes and to-device messages leave through federation/device_list_edus.py (the
on_local_change hook of device_lists.py) and federation/to_device_edus.py (RemoteToDevice).
"""
