// matrix-js-sdk's SlidingSync (the simplified MSC3575 / MSC4186 endpoint, as Element Web uses
// it) against a homeserver, for tests/interop/test_matrix_js_sdk_sliding_sync.py.
//
//   node sliding_sync.mjs <base url> <user> <password> <room id to subscribe to>
//
// Logs in with the password, starts the client with one list ("all_rooms", the top 20 rooms by
// recency) and one room subscription, and prints one JSON object per line on stdout:
//   {"event": "logged_in", "user_id": ..., "device_id": ...}
//   {"event": "synced", "rooms": [...]}     after every sliding sync response the SDK processed
//   {"event": "message", "room_id", "sender", "body"}   each live m.room.message as it arrives
//   {"event": "typing", "room_id", "user_id", "typing"}  from the typing extension
//   {"event": "account_data", "type"}                    from the account_data extension
// where a room is {room_id, name, unread, highlight, membership, last_message}. It runs until
// its stdin closes. The SDK's own logging goes to stderr.

import * as sdk from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";
import { logger } from "matrix-js-sdk/lib/logger.js";

const [baseUrl, user, password, subscribeTo] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
for (const level of ["trace", "debug", "info", "log", "warn", "error"]) {
    logger[level] = (...args) => process.stderr.write(`[sdk ${level}] ${args.join(" ")}\n`);
}

const REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.create", ""],
    ["m.room.member", "$ME"],
    ["m.room.member", "$LAZY"],
    ["m.room.power_levels", ""],
];

function lastMessage(room) {
    const events = room.getLiveTimeline().getEvents();
    for (let i = events.length - 1; i >= 0; i--) {
        if (events[i].getType() === "m.room.message") return events[i].getContent().body;
    }
    return null;
}

function snapshot(client) {
    return client.getRooms()
        .map((room) => ({
            room_id: room.roomId,
            name: room.name,
            unread: room.getUnreadNotificationCount("total"),
            highlight: room.getUnreadNotificationCount("highlight"),
            membership: room.getMyMembership(),
            last_message: lastMessage(room),
        }))
        .sort((a, b) => a.room_id.localeCompare(b.room_id));
}

const login = await sdk.createClient({ baseUrl }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "matrix-js-sdk sliding sync",
});
print({ event: "logged_in", user_id: login.user_id, device_id: login.device_id });

const client = sdk.createClient({
    baseUrl,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
});
const lists = new Map([["all_rooms", {
    ranges: [[0, 19]],
    timeline_limit: 1,
    required_state: REQUIRED_STATE,
}]]);
const slidingSync = new SlidingSync(
    baseUrl, lists, { timeline_limit: 20, required_state: REQUIRED_STATE }, client, 30000,
);
slidingSync.modifyRoomSubscriptions(new Set([subscribeTo]));
slidingSync.on(SlidingSyncEvent.Lifecycle, (state, _resp, err) => {
    if (err) process.stderr.write(`sliding sync error: ${err}\n`);
    if (state === SlidingSyncState.Complete) print({ event: "synced", rooms: snapshot(client) });
});
client.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline, _removed, data) => {
    if (toStartOfTimeline || !data?.liveEvent || event.getType() !== "m.room.message") return;
    print({
        event: "message", room_id: room.roomId, sender: event.getSender(),
        body: event.getContent().body,
    });
});
client.on(sdk.RoomMemberEvent.Typing, (_event, member) => {
    print({ event: "typing", room_id: member.roomId, user_id: member.userId, typing: member.typing });
});
client.on(sdk.ClientEvent.AccountData, (event) => {
    print({ event: "account_data", type: event.getType() });
});
await client.startClient({ slidingSync });

process.stdin.resume();
process.stdin.on("end", () => {
    client.stopClient();
    process.exit(0);
});
