// matrix-js-sdk's MSC4140 delayed events used the way MatrixRTC (Element Call) uses them, against
// a homeserver, for tests/interop/test_matrix_js_sdk_delayed_events.py.
//
//   node delayed_events.mjs <base url> <user> <password> <room id> <max delay ms>
//
// Logs in with the password and, in the room:
//  1. schedules its call membership's end (a delayed empty org.matrix.msc3401.call.member state
//     event, 1.5 s) and then joins the call (that state with content), as MembershipManager does;
//  2. keeps restarting the delay for 3 s (a live client's heartbeat): still in the call;
//  3. lists its delayed events; then stops restarting (a crash): the membership ends by itself;
//  4. a delayed message sent at once ("send"), one cancelled, and one over the maximum.
// Prints one JSON object per step on stdout and {"event": "done"} at the end; the SDK's own
// logging goes to stderr. Exits non-zero on an unexpected error.

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const [baseUrl, user, password, roomId, maxDelay] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
for (const level of ["trace", "debug", "info", "log", "warn", "error"]) {
    logger[level] = (...args) => process.stderr.write(`[sdk ${level}] ${args.join(" ")}\n`);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CALL_MEMBER = "org.matrix.msc3401.call.member";

const login = await sdk.createClient({ baseUrl }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "matrix-js-sdk delayed events",
});
const client = sdk.createClient({
    baseUrl, userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id,
});
print({ event: "logged_in", user_id: login.user_id, device_id: login.device_id });

async function membership(stateKey) {
    try {
        return await client.getStateEvent(roomId, CALL_MEMBER, stateKey);
    } catch (e) {
        if (e.errcode === "M_NOT_FOUND") return null;
        throw e;
    }
}

async function messages() {
    const res = await client.createMessagesRequest(roomId, null, 20, "b");
    return res.chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
}

// 1. As MembershipManager: the delayed leave first, then the membership itself.
const stateKey = `_${login.user_id}_${login.device_id}`;
const { delay_id: leaveId } = await client._unstable_sendDelayedStateEvent(
    roomId, { delay: 1500 }, CALL_MEMBER, {}, stateKey);
await client.sendStateEvent(roomId, CALL_MEMBER, {
    application: "m.call", call_id: "", scope: "m.room", device_id: login.device_id,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [{ type: "livekit", livekit_service_url: "https://livekit-jwt.example.org" }],
}, stateKey);
print({ event: "joined", delay_id: leaveId, state_key: stateKey });

// 2. The heartbeat: restart well within the delay, for twice as long as the delay.
const beatUntil = Date.now() + 3000;
let beats = 0;
while (Date.now() < beatUntil) {
    await client._unstable_updateDelayedEvent(leaveId, sdk.UpdateDelayedEventAction.Restart);
    beats++;
    await sleep(400);
}
const during = await membership(stateKey);
print({ event: "heartbeat", beats, application: during?.application ?? null });

// 3. The listing, then a "crash": no more restarts, so the leave goes out by itself.
const listed = await client._unstable_getDelayedEvents();
print({
    event: "listed",
    delayed_events: listed.delayed_events.map((e) => ({
        delay_id: e.delay_id, type: e.type, state_key: e.state_key, delay: e.delay,
        running_since: e.running_since, content: e.content,
    })),
});
const crashAt = Date.now();
let after = await membership(stateKey);
while (after && Object.keys(after).length > 0 && Date.now() - crashAt < 20000) {
    await sleep(100);
    after = await membership(stateKey);
}
print({ event: "left", content: after, waited_ms: Date.now() - crashAt });

// 4. A delayed message sent now, one cancelled, and one asking for too long a delay.
const { delay_id: nowId } = await client._unstable_sendDelayedEvent(
    roomId, { delay: 60000 }, null, "m.room.message", { msgtype: "m.text", body: "sent now" });
const { delay_id: cancelId } = await client._unstable_sendDelayedEvent(
    roomId, { delay: 60000 }, null, "m.room.message", { msgtype: "m.text", body: "cancelled" });
await client._unstable_updateDelayedEvent(nowId, sdk.UpdateDelayedEventAction.Send);
await client._unstable_updateDelayedEvent(cancelId, sdk.UpdateDelayedEventAction.Cancel);
let unknown = null;
try {
    await client._unstable_updateDelayedEvent(cancelId, sdk.UpdateDelayedEventAction.Restart);
} catch (e) {
    unknown = { status: e.httpStatus, errcode: e.errcode };
}
let tooLong = null;
try {
    await client._unstable_sendDelayedEvent(
        roomId, { delay: Number(maxDelay) + 1 }, null, "m.room.message", { body: "too long" });
} catch (e) {
    tooLong = {
        status: e.httpStatus, errcode: e.errcode,
        max_delay: e.data?.["org.matrix.msc4140.max_delay"] ?? null,
    };
}
const left = await client._unstable_getDelayedEvents();
print({
    event: "messages", bodies: await messages(), unknown, too_long: tooLong,
    pending: left.delayed_events.length,
});
print({ event: "done" });
