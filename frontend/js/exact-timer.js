// A timeout that fires within a fraction of a millisecond of its moment, for the one call
// whose timing every viewer hears: play() at a scheduled start.
//
// setTimeout alone fires late by 0-11 ms in the sync test's pages (three renderers on two
// cores): the wake-up waits for the OS to schedule the renderer and for the task queue, and
// every ms late is a ms the media starts late. So the timer wakes EXACT_MARGIN_MS early and
// finishes the wait by yielding through a MessageChannel, which runs again within tens of
// µs while still letting every other task (rendering, input, the socket) run in between.

/** How early the coarse timer wakes; the rest of the wait is spent yielding. */
export const EXACT_MARGIN_MS = 12;

/**
 * Calls `fn` once `now()` has reached `now() + ms` (measured at the call). Returns a handle
 * for `clearExactTimeout`.
 */
export function setExactTimeout(fn, ms, now = () => performance.now()) {
  const at = now() + ms;
  const handle = { timer: null, channel: null, done: false };
  const finish = () => {
    if (handle.done) return;
    const left = at - now();
    if (left > 0) {
      handle.channel.port2.postMessage(null);
      return;
    }
    clearExactTimeout(handle);
    fn();
  };
  const startYielding = () => {
    handle.timer = null;
    handle.channel = new MessageChannel();
    handle.channel.port1.onmessage = finish;
    finish();
  };
  if (ms > EXACT_MARGIN_MS) handle.timer = setTimeout(startYielding, ms - EXACT_MARGIN_MS);
  else startYielding();
  return handle;
}

/** Cancels a timer from `setExactTimeout` (a fired or cancelled one is left alone). */
export function clearExactTimeout(handle) {
  if (!handle || handle.done) return;
  handle.done = true;
  if (handle.timer !== null) clearTimeout(handle.timer);
  if (handle.channel) {
    handle.channel.port1.onmessage = null;
    handle.channel.port1.close();
    handle.channel.port2.close();
  }
}
