// REST calls. Every function resolves to {ok: true, data} or {ok: false, status, code, message},
// so callers show a message instead of dealing with exceptions.

async function request(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { ok: false, status: 0, code: 'network', message: 'The server cannot be reached.' };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // empty or non-JSON body
  }
  if (response.ok) return { ok: true, status: response.status, data };
  const error = data && data.error && typeof data.error === 'object' ? data.error : {};
  return {
    ok: false,
    status: response.status,
    code: typeof error.code === 'string' ? error.code : `http_${response.status}`,
    message: typeof error.message === 'string' ? error.message : `Request failed (${response.status}).`,
  };
}

export const createRoom = (options) => request('POST', '/api/rooms', options);
export const getRoom = (roomId) => request('GET', `/api/rooms/${encodeURIComponent(roomId)}`);

/** The media library, keeping only well-formed entries. */
export async function listMedia() {
  const result = await request('GET', '/api/media');
  if (!result.ok) return result;
  const items = Array.isArray(result.data) ? result.data : [];
  return {
    ok: true,
    data: items.filter((m) => m && typeof m.name === 'string' && typeof m.url === 'string' && m.url.startsWith('/media/')),
  };
}
