// The live room: likes and an online count, shared by everyone in the room
// through tally's Web SDK. ?user=NAME joins at once; ?room=ID picks a room.
import { create, EVENT } from "/sdk.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.get("room") ?? "live";
const config = await (await fetch("/config")).json();
let chat;
let joined = false;

$("room").textContent = room;

async function userSig(user) {
  const res = await fetch(`/usersig?user=${encodeURIComponent(user)}`);
  return (await res.json()).userSig;
}

function show(key, value) {
  if (key === "likes" || key === "online") $(key).textContent = String(value);
}

function fail(err) {
  $("error").textContent = `Error ${err.code ?? ""}: ${err.message}`;
}

async function join(user) {
  $("error").textContent = "";
  chat = create({ servers: config.servers });
  chat.on(EVENT.GROUP_COUNTER_UPDATED, ({ data }) => {
    if (data.groupID !== room) return;
    show(data.key, data.value);
    const li = document.createElement("li");
    li.textContent = `${data.key} = ${data.value} (seq ${data.seq})`;
    $("log").prepend(li);
  });
  chat.on(EVENT.USER_SIG_EXPIRING, async () => chat.renewUserSig(await userSig(user)).catch(fail));
  chat.on(EVENT.KICKED_OUT, ({ data }) => {
    joined = false;
    $("status").textContent = `Signed out (${data.type}).`;
  });
  await chat.login({ userID: user, userSig: await userSig(user) });
  $("join").hidden = true;
  $("room-view").hidden = false;
  $("status").textContent = `Signed in as ${user}.`;
  const { data } = await chat.getGroupCounters({ groupID: room, keyList: ["likes", "online"] });
  show("likes", data.counters.likes ?? 0);
  show("online", data.counters.online ?? 0);
  const online = await chat.increaseGroupCounter({ groupID: room, key: "online", value: 1 });
  show("online", online.data.value);
  joined = true;
  $("status").textContent = `${user} joined ${room}.`;
}

async function leave() {
  if (!joined) return;
  joined = false;
  await chat.decreaseGroupCounter({ groupID: room, key: "online", value: 1 });
  await chat.logout();
  $("status").textContent = "You left the room.";
}

$("join").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("user").value.trim()).catch(fail);
});
$("like").addEventListener("click", () => {
  chat.increaseGroupCounter({ groupID: room, key: "likes", value: 1 })
    .then(({ data }) => show("likes", data.value), fail);
});
$("leave").addEventListener("click", () => leave().catch(fail));
// Closing the tab leaves the room too, as far as the browser lets the
// request out before the page goes.
addEventListener("pagehide", () => {
  if (joined) chat.decreaseGroupCounter({ groupID: room, key: "online", value: 1 }).catch(() => {});
});

if (params.get("user")) {
  $("user").value = params.get("user");
  join(params.get("user")).catch(fail);
}
