// The review page's check of a recording, in the browser: the manifest's
// Ed25519 signature over its stored bytes, against the keys the cluster
// publishes at GET /v1/recordings/keys (never a key the manifest names
// for itself), and each file's size and SHA-256. It is the check
// `invigil verify --keys https://NODE/v1/recordings/keys` makes offline
// (docs/recording.md, "Verifying").

// signingContext starts the bytes a version-2 signature covers.
const signingContext = 'invigil recording manifest v2\n';

/**
 * canonicalJSON is the JSON Canonicalization Scheme (RFC 8785) form of
 * value, leaving out the top-level member drop. ECMAScript's
 * JSON.stringify already writes strings and numbers as RFC 8785 wants;
 * what it adds is members sorted by their names' UTF-16 code units,
 * which is what Array.prototype.sort compares.
 */
export function canonicalJSON(value, drop) {
  const walk = (v, top) => {
    if (Array.isArray(v)) return '[' + v.map((x) => walk(x, false)).join(',') + ']';
    if (v !== null && typeof v === 'object') {
      const names = Object.keys(v).filter((k) => !(top && k === drop)).sort();
      return '{' + names.map((k) => JSON.stringify(k) + ':' + walk(v[k], false)).join(',') + '}';
    }
    return JSON.stringify(v);
  };
  return walk(value, true);
}

const fromBase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');

/**
 * verifySignature checks the manifest whose stored text is raw against
 * keyring ({keys: [{id, alg, public_key, created, retired}]}). It
 * resolves to {ok, keyID, problem}.
 */
export async function verifySignature(raw, keyring) {
  let m;
  try {
    m = JSON.parse(raw);
  } catch (err) {
    return {ok: false, problem: `the manifest is not JSON: ${err.message}`};
  }
  if (m.version !== 2) {
    return {ok: false, problem: `a version-${m.version} manifest (HMAC) can only be checked with the node's secret: use invigil verify`};
  }
  const key = (keyring.keys ?? []).find((k) => k.id === m.key_id && k.alg === 'Ed25519');
  if (!key) return {ok: false, keyID: m.key_id, problem: `signed with key ${m.key_id}, which is not among the published keys`};
  if (key.retired && new Date(m.started) > new Date(key.retired)) {
    return {ok: false, keyID: key.id, problem: `key ${key.id} was retired before this session started`};
  }
  if (!globalThis.crypto?.subtle) return {ok: false, keyID: key.id, problem: 'this browser cannot check signatures here (no Web Crypto): use invigil verify'};
  try {
    const pub = await crypto.subtle.importKey('raw', fromBase64(key.public_key), {name: 'Ed25519'}, false, ['verify']);
    const msg = new TextEncoder().encode(signingContext + canonicalJSON(m, 'signature'));
    const ok = await crypto.subtle.verify({name: 'Ed25519'}, pub, fromBase64(m.signature), msg);
    return ok ? {ok: true, keyID: key.id} : {ok: false, keyID: key.id, problem: `the signature does not verify with key ${key.id}: the manifest was altered`};
  } catch (err) {
    return {ok: false, keyID: key.id, problem: `the signature could not be checked here (${err.name}): use invigil verify`};
  }
}

/** checkFile compares a downloaded file's bytes with its manifest entry; null when they match. */
export async function checkFile(entry, bytes) {
  if (bytes.byteLength !== entry.bytes) return `${entry.name}: ${bytes.byteLength} bytes, the manifest says ${entry.bytes}`;
  const sum = hex(await crypto.subtle.digest('SHA-256', bytes));
  return sum === entry.sha256 ? null : `${entry.name}: SHA-256 ${sum.slice(0, 12)}…, the manifest says ${entry.sha256.slice(0, 12)}…`;
}
