// token.js: reading the join token a page was opened with. The SDK never
// reads the location itself; pages pass the token in.

/**
 * tokenFromLocation returns the join token from a URL fragment such as
 * `#token=eyJ…` (other `&key=value` pairs may follow), or null. Tokens travel
 * in the fragment so they never reach server logs, proxies or Referer headers.
 */
export function tokenFromLocation(location = globalThis.location) {
  const hash = location?.hash ?? '';
  if (hash.length < 2) return null;
  const token = new URLSearchParams(hash.slice(1)).get('token');
  return token || null;
}

/**
 * tokenClaims decodes a join token's claims WITHOUT verifying it (the server
 * does that): for a page's own decisions before it joins, e.g. whether it is
 * a student's second device (`device`). Returns null for a malformed token.
 */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, '=')));
  } catch {
    return null;
  }
}
