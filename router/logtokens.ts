// Personal data in the router's logs, tokenised as the Python processes do (subgraphs/kernel/logtokens.py):
// AES-SIV (RFC 5297, 512-bit key, one associated-data string) over the UTF-8 value, `pii_` + base64url.
// Node's crypto has AES but no SIV mode, so S2V (AES-CMAC) and CTR are composed here from AES-ECB and
// AES-CTR; tests/unit/test_log_tokens.py checks these tokens against the Python ones, both ways.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

export const PREFIX = 'pii_';
const ASSOCIATED = Buffer.from('beep-log-token-v1');
const KEY_BYTES = 64;

// Structured fields that hold personal data, whatever their value looks like (as in logtokens.py).
export const PERSONAL_FIELDS = new Set([
  'email',
  'username',
  'display_name',
  'first_name',
  'last_name',
  'ip',
  'client_ip',
  'text',
]);

const EMAIL = /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
const IPV4 = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])/g;
const IPV6 = /(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])/g;

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

// Doubling in GF(2^128) (RFC 5297 section 2.3).
function dbl(block: Buffer): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) out[i] = ((block[i]! << 1) | (i < 15 ? block[i + 1]! >> 7 : 0)) & 0xff;
  if (block[0]! & 0x80) out[15] = out[15]! ^ 0x87;
  return out;
}

function aesBlock(key: Buffer, block: Buffer): Buffer {
  const cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

// AES-CMAC (RFC 4493).
function cmac(key: Buffer, message: Buffer): Buffer {
  const k1 = dbl(aesBlock(key, Buffer.alloc(16)));
  const k2 = dbl(k1);
  const blocks = Math.max(1, Math.ceil(message.length / 16));
  const complete = message.length > 0 && message.length % 16 === 0;
  let last = Buffer.alloc(16);
  message.copy(last, 0, (blocks - 1) * 16);
  if (complete) last = xor(last, k1);
  else {
    last[message.length - (blocks - 1) * 16] = 0x80;
    last = xor(last, k2);
  }
  let x = Buffer.alloc(16);
  for (let i = 0; i < blocks - 1; i++) x = aesBlock(key, xor(x, message.subarray(i * 16, i * 16 + 16)));
  return aesBlock(key, xor(x, last));
}

function s2v(key: Buffer, associated: Buffer[], plaintext: Buffer): Buffer {
  let d = cmac(key, Buffer.alloc(16));
  for (const ad of associated) d = xor(dbl(d), cmac(key, ad));
  let t: Buffer;
  if (plaintext.length >= 16) {
    t = Buffer.from(plaintext);
    const end = t.length - 16;
    xor(t.subarray(end), d).copy(t, end);
  } else {
    const padded = Buffer.alloc(16);
    plaintext.copy(padded);
    padded[plaintext.length] = 0x80;
    t = xor(dbl(d), padded);
  }
  return cmac(key, t);
}

function ctr(key: Buffer, v: Buffer, data: Buffer, decrypt: boolean): Buffer {
  const iv = Buffer.from(v);
  iv[8] = iv[8]! & 0x7f; // RFC 5297: bits 63 and 31 cleared
  iv[12] = iv[12]! & 0x7f;
  const make = decrypt ? createDecipheriv : createCipheriv;
  const c = make(`aes-${key.length * 8}-ctr`, key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64url');
}

// Tokens already made, by value (a token is deterministic). The access log tokenises every request's
// client address, and S2V and CTR cost ~11 AES cipher set-ups per token: 7% of a busy router's CPU
// (bench/README.md); addresses and names repeat, so a bounded memo makes that nearly nothing.
const MEMO_SIZE = 4096;

export class LogTokenizer {
  readonly #mac: Buffer;
  readonly #enc: Buffer;
  readonly #made = new Map<string, string>();

  constructor(key: string) {
    const raw = Buffer.from(key.trim(), 'base64url');
    if (raw.length !== KEY_BYTES) {
      throw new Error(`[beep-router] BEEP_LOG_TOKEN_KEY must be ${KEY_BYTES} random bytes in base64url`);
    }
    this.#mac = raw.subarray(0, KEY_BYTES / 2);
    this.#enc = raw.subarray(KEY_BYTES / 2);
  }

  token(value: string): string {
    if (!value) return value;
    const made = this.#made.get(value);
    if (made !== undefined) return made;
    const plaintext = Buffer.from(value, 'utf8');
    const v = s2v(this.#mac, [ASSOCIATED], plaintext);
    const token = PREFIX + Buffer.concat([v, ctr(this.#enc, v, plaintext, false)]).toString('base64url');
    if (this.#made.size >= MEMO_SIZE) this.#made.clear();
    this.#made.set(value, token);
    return token;
  }

  reveal(token: string): string | undefined {
    const sealed = Buffer.from(token.trim().replace(/^pii_/, ''), 'base64url');
    if (sealed.length < 17) return undefined;
    const v = sealed.subarray(0, 16);
    const plaintext = ctr(this.#enc, v, sealed.subarray(16), true);
    return s2v(this.#mac, [ASSOCIATED], plaintext).equals(v) ? plaintext.toString('utf8') : undefined;
  }

  /** E-mail and IP addresses in free text replaced by tokens; loopback addresses are this machine's. */
  scrub(text: string): string {
    let out = text.includes('@') ? text.replace(EMAIL, (m) => this.token(m)) : text;
    out = out.replace(IPV4, (m) => this.#address(m));
    return out.includes('::') || (out.match(/:/g)?.length ?? 0) >= 3 ? out.replace(IPV6, (m) => this.#address(m)) : out;
  }

  #address(found: string): string {
    const kind = isIP(found);
    if (kind === 0) return found;
    if (kind === 4 ? found.startsWith('127.') || found === '0.0.0.0' : found === '::1' || found === '::') {
      return found;
    }
    return this.token(found);
  }

  /** A log entry's fields, personal ones as tokens and free text scrubbed, nested values included. */
  fields(value: unknown, key = ''): unknown {
    if (value === null || value === undefined) return value;
    if (PERSONAL_FIELDS.has(key)) return this.token(String(value));
    if (typeof value === 'string') return this.scrub(value);
    if (typeof value !== 'object') return value;
    if (value instanceof Error) return this.scrub(value.stack ?? String(value));
    if (Array.isArray(value)) return value.map((v) => this.fields(v, key));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.fields(v, k)]));
  }
}
