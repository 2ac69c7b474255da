// Storage that never throws (private modes and full quotas make the Web Storage API throw).
//   name:          localStorage, shared by all rooms (asked once)
//   host token:    localStorage per room, so the creator stays host across tabs and restarts
//   resume token:  sessionStorage per room, so a reload of this tab keeps the same identity
//                  while another tab joins as someone new

function safe(fn, fallback = null) {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

const local = () => globalThis.localStorage;
const session = () => globalThis.sessionStorage;

export const storage = {
  getName: () => safe(() => local().getItem('wt:name')) || '',
  setName: (name) => safe(() => local().setItem('wt:name', name)),
  getHostToken: (roomId) => safe(() => local().getItem(`wt:host:${roomId}`)),
  setHostToken: (roomId, token) => safe(() => local().setItem(`wt:host:${roomId}`, token)),
  getResumeToken: (roomId) => safe(() => session().getItem(`wt:resume:${roomId}`)),
  setResumeToken: (roomId, token) => safe(() => session().setItem(`wt:resume:${roomId}`, token)),
  clearResumeToken: (roomId) => safe(() => session().removeItem(`wt:resume:${roomId}`)),
};
