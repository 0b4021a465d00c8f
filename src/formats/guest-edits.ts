/**
 * Small rewrites of text files the image already has (/etc/shadow, /etc/inittab), done by the rootfs filter as
 * the file goes by. Pure: bytes in, bytes out.
 *
 * Files are handled as byte strings (latin1, one char per byte), so bytes that are not UTF-8 and CR line endings
 * come out as they went in; only the edited field or the appended line is new.
 */
import { C2vError } from '../errors.js';
import { byteString, textOf, type PaxRecord, type TarKind } from './tar/index.js';
import { kindName, normalise } from './rootfs-tree.js';

export type GuestEdit =
  /**
   * Appends `line` and a newline, unless a line of the file already matches `unlessMatching` (a RegExp source,
   * searched anywhere in the line, so anchor it for a whole-line match) or, without it, is exactly `line`.
   */
  | { path: string; op: 'append-line'; line: string; unlessMatching?: string }
  /** Sets the user's hash in a shadow(5) file; `hash: null` locks the account instead ('!' in front). */
  | { path: string; op: 'shadow-password'; user: string; hash: string | null };

/** The largest file c2v holds in memory to edit; the files worth editing are a few KiB. */
export const MAX_EDITED_FILE = 1024 * 1024;

const LINE_BREAK = /[\r\n]/;
// ':' would start another field and a line break another entry; NUL ends the line for C readers.
const NOT_IN_SHADOW_FIELD = /[:\r\n\0]/;

const shownPath = (edit: GuestEdit): string => `/${normalise(edit.path)}`;
/** A value for an error message: quoted, escaped and short, so the message stays one line. */
const quoted = (value: string): string => JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);

/** Refuses an edit that could never apply cleanly, before any file is read. */
export function checkGuestEdit(edit: GuestEdit): void {
  const shown = shownPath(edit);
  if (normalise(edit.path) === '') throw new C2vError('input', `c2v cannot edit ${quoted(edit.path)}: it names the root directory; give a file path`);
  switch (edit.op) {
    case 'append-line':
      if (LINE_BREAK.test(edit.line)) throw new C2vError('input', `cannot append ${quoted(edit.line)} to ${shown}: it contains a line break; give one line per edit`);
      if (edit.unlessMatching !== undefined) matcher(edit.unlessMatching, shown);
      return;
    case 'shadow-password':
      if (edit.user === '' || NOT_IN_SHADOW_FIELD.test(edit.user)) {
        throw new C2vError('input', `cannot set a password in ${shown} for the user ${quoted(edit.user)}: give a non-empty user name without ':', line breaks or NUL bytes`);
      }
      if (edit.hash === '') {
        // An empty field means no password at all: anyone could log in as that user.
        throw new C2vError('input', `refusing an empty password hash for ${quoted(edit.user)} in ${shown}: it would allow a login without a password; give a crypt(3) hash (openssl passwd -6) or lock the account`);
      }
      if (edit.hash !== null && NOT_IN_SHADOW_FIELD.test(edit.hash)) {
        throw new C2vError('input', `the password hash for ${quoted(edit.user)} contains ':', a line break or a NUL byte, which would corrupt ${shown}: give a crypt(3) hash such as the output of openssl passwd -6`);
      }
      return;
    default:
      throw new C2vError('internal', `unknown guest edit ${quoted(String((edit as { op: unknown }).op))} for ${shown}`);
  }
}

function matcher(source: string, shown: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new C2vError('input', `cannot edit ${shown}: ${quoted(source)} is not a valid regular expression (${(e as Error).message.split('\n')[0]}); fix the pattern`);
  }
}

/**
 * The file's content after the edit, from its content before (undefined: the image has no such file); undefined
 * when there is still no file to write. A file that exists always gives content back.
 */
export function applyGuestEdit(edit: GuestEdit, content: Buffer | undefined): Buffer | undefined {
  checkGuestEdit(edit);
  return edit.op === 'append-line' ? appendLine(edit, content) : shadowPassword(edit, content);
}

/** The lines of a byte string; the newline that ends the last one does not start another. */
function linesOf(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines;
}

function appendLine(edit: Extract<GuestEdit, { op: 'append-line' }>, content: Buffer | undefined): Buffer {
  const text = content === undefined ? '' : content.toString('latin1');
  const line = byteString(edit.line);
  const pattern = edit.unlessMatching === undefined ? undefined : matcher(edit.unlessMatching, shownPath(edit));
  // The pattern is written against text, the file may hold any bytes: match what they read as in UTF-8.
  const present = linesOf(text).some((l) => (pattern ? pattern.test(textOf(l)) : l === line));
  if (present && content !== undefined) return content;
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return Buffer.from(`${text}${sep}${line}\n`, 'latin1');
}

function shadowPassword(edit: Extract<GuestEdit, { op: 'shadow-password' }>, content: Buffer | undefined): Buffer | undefined {
  const shown = shownPath(edit);
  if (content === undefined) {
    if (edit.hash === null) return undefined;
    throw new C2vError('input', `the image has no ${shown}: c2v cannot set the password of ${quoted(edit.user)} without it; install the shadow tools in the image (passwd or shadow package) or leave the password hash out`);
  }
  const user = byteString(edit.user);
  const hash = edit.hash === null ? null : byteString(edit.hash);
  let found = false;
  // Every line is kept as it is but the user's second field, so CRs, odd bytes and the final newline survive.
  const lines = content.toString('latin1').split('\n').map((line) => {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon) !== user) return line;
    found = true;
    let end = line.indexOf(':', colon + 1);
    if (end < 0) end = line.endsWith('\r') ? line.length - 1 : line.length;
    const field = line.slice(colon + 1, end);
    const next = hash ?? (field.startsWith('!') || field.startsWith('*') ? field : `!${field}`);
    return `${line.slice(0, colon + 1)}${next}${line.slice(end)}`;
  });
  if (!found) {
    if (hash === null) return content;
    throw new C2vError('input', `cannot set the password of ${quoted(edit.user)}: ${shown} in the image has no line for that user; create the user in the image (useradd) or name another one`);
  }
  return Buffer.from(lines.join('\n'), 'latin1');
}

/**
 * The edits of one conversion by the path they apply to, for the rootfs filter: which input entries it holds
 * back, what they become, and the files the edits make at the end for paths the image lacks.
 */
export class GuestEdits {
  private readonly byKey = new Map<string, GuestEdit[]>();
  private readonly done = new Set<string>();

  /** `refuse` says why a path (normalised, a byte string) cannot be edited, if it cannot. */
  constructor(edits: readonly GuestEdit[], refuse: (key: string) => string | undefined) {
    for (const edit of edits) {
      checkGuestEdit(edit);
      const key = normalise(byteString(edit.path));
      const why = refuse(key);
      if (why) throw new C2vError('input', `c2v cannot edit /${textOf(key)}: ${why}`);
      this.byKey.set(key, [...(this.byKey.get(key) ?? []), edit]);
    }
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Refuses an input entry at an edited path unless it is a regular file small enough to hold in memory. */
  checkEntry(key: string, kind: TarKind, pax: readonly PaxRecord[], size: number): void {
    const shown = `/${textOf(key)}`;
    if (kind !== 'file') throw new C2vError('input', `c2v cannot edit ${shown}: it is a ${kindName(kind)} in the image, and c2v edits regular files only; make it one there`);
    if (pax.some((r) => r.key.startsWith('GNU.sparse.'))) throw new C2vError('input', `c2v cannot edit ${shown}: the image stores it as a sparse file; make it a plain file there`);
    if (size > MAX_EDITED_FILE) throw new C2vError('input', `c2v cannot edit ${shown}: it is ${size} bytes, over the 1 MiB c2v edits; make it smaller in the image`);
  }

  /** Refuses a hard link to an edited file: whether the other name should see the edit is not c2v's to guess. */
  checkHardLink(key: string, target: string): void {
    if (this.byKey.has(target)) throw new C2vError('input', `c2v cannot edit /${textOf(target)}: /${textOf(key)} is a hard link to it in the image; make them separate files there`);
  }

  /** The content of the image's file at `key` after its edits, in order. */
  apply(key: string, content: Buffer): Buffer {
    this.done.add(key);
    let out = content;
    for (const edit of this.byKey.get(key) ?? []) out = applyGuestEdit(edit, out) ?? out;
    return out;
  }

  /** Once the input has ended: the files to add for the edited paths the image did not have. */
  leftovers(): [key: string, content: Buffer][] {
    const files: [string, Buffer][] = [];
    for (const [key, edits] of this.byKey) {
      if (this.done.has(key)) continue;
      let content: Buffer | undefined;
      for (const edit of edits) content = applyGuestEdit(edit, content);
      if (content) files.push([key, content]);
    }
    return files;
  }
}
