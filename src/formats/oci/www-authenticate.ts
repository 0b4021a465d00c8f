/**
 * `WWW-Authenticate` challenges (RFC 7235): one header may carry several (`Basic realm="r", Bearer realm="t"`),
 * and fetch joins repeated headers with ", ", so a comma ends either a parameter or a whole challenge; what
 * follows it decides which (`name=` continues the parameters, a bare token starts the next challenge).
 */

export interface AuthChallenge {
  /** Lower-cased: `basic`, `bearer`. */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. The first of a repeated name wins. */
  params: Record<string, string>;
  /** The opaque form some schemes use instead of parameters (`Negotiate abc==`). */
  token68?: string;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  skipSpaceAndCommas(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }

  token(): string {
    const start = this.pos;
    while (!this.done && TOKEN_CHAR.test(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** After the opening quote; a backslash takes the next character as it is. An unclosed string runs to the end. */
  quoted(): string {
    let out = '';
    while (!this.done) {
      const c = this.text[this.pos++];
      if (c === '"') return out;
      if (c === '\\' && !this.done) out += this.text[this.pos++];
      else out += c;
    }
    return out;
  }

  /** Whether `name =` comes next (a parameter rather than the next challenge's scheme), without moving. */
  atParam(): boolean {
    const save = this.pos;
    const name = this.token();
    this.skipSpace();
    const eq = this.peek() === '=';
    this.pos = save;
    return name !== '' && eq;
  }
}

export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const c = new Cursor(header);
  const out: AuthChallenge[] = [];
  while (true) {
    c.skipSpaceAndCommas();
    if (c.done) break;
    const scheme = c.token();
    if (!scheme) {
      c.pos++; // a stray character: skip it rather than give up on the rest
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    c.skipSpace();
    const t68 = TOKEN68.exec(c.text.slice(c.pos));
    if (t68 && !c.atParam()) {
      challenge.token68 = t68[0];
      c.pos += t68[0].length;
      continue;
    }
    if (t68 && c.atParam()) {
      // `abc=` followed by nothing, a comma or more '=' is token68 padding, not an empty parameter.
      const after = c.text.slice(c.pos + t68[0].length).trimStart();
      if (t68[0].endsWith('=') && (after === '' || after.startsWith(','))) {
        challenge.token68 = t68[0];
        c.pos += t68[0].length;
        continue;
      }
    }
    while (c.atParam()) {
      const name = c.token().toLowerCase();
      c.skipSpace();
      c.pos++; // '='
      c.skipSpace();
      let value: string;
      if (c.peek() === '"') {
        c.pos++;
        value = c.quoted();
      } else {
        value = c.token();
      }
      if (!(name in challenge.params)) challenge.params[name] = value;
      c.skipSpace();
      if (c.peek() !== ',') break;
      c.skipSpaceAndCommas();
    }
  }
  return out;
}
