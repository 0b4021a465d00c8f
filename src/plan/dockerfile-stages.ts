/**
 * Just enough of the Dockerfile syntax to append c2v's packages stage after a user's last stage: instructions
 * (with line continuations, comments and the escape directive), the stages, each stage's base and USER. The
 * builder parses the file for real; this only has to find where a stage starts and what it is called.
 */
export interface Instruction {
  /** Upper-cased: FROM, USER, RUN ... */
  keyword: string;
  /** The rest of the instruction, continuations joined. */
  args: string;
  /** 0-based index of its first and last physical line. */
  firstLine: number;
  lastLine: number;
}

export interface Stage {
  /** The FROM's image or earlier stage, as written (`${BASE}` unexpanded). */
  base: string;
  alias?: string;
  /** The last USER of the stage, as written. */
  user?: string;
  from: Instruction;
}

export const APP_STAGE_ALIAS = 'c2v-app';

export function parseInstructions(text: string): Instruction[] {
  const lines = text.split('\n');
  let escape = '\\';
  const out: Instruction[] = [];
  let seenInstruction = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    const trimmed = line.trim();
    if (!seenInstruction) {
      const directive = /^#\s*escape\s*=\s*(\S)\s*$/i.exec(trimmed);
      if (directive) {
        escape = directive[1];
        continue;
      }
    }
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    seenInstruction = true;
    const first = i;
    let joined = trimmed;
    while (joined.endsWith(escape) && i + 1 < lines.length) {
      joined = joined.slice(0, -escape.length).trimEnd();
      i++;
      // Comment and empty lines inside a continuation are dropped by the builder.
      let next = lines[i].trim();
      while ((next === '' || next.startsWith('#')) && i + 1 < lines.length) next = lines[++i].trim();
      joined += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(joined)!;
    out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), firstLine: first, lastLine: i });
  }
  return out;
}

export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const asAt = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ base: words[0] ?? '', alias: asAt !== -1 ? words[asAt + 1] : undefined, from: ins });
    } else if (ins.keyword === 'USER' && stages.length > 0) {
      stages[stages.length - 1].user = ins.args;
    }
  }
  return stages;
}

/**
 * The USER the final stage runs as, following bases that are earlier stages; undefined when it comes from an
 * image outside the file (the caller may look that image up), '' never.
 */
export function finalUser(stages: Stage[]): { user?: string; externalBase?: string } {
  for (let i = stages.length - 1; i >= 0; ) {
    const stage = stages[i];
    if (stage.user) return { user: stage.user };
    const earlier = stages.slice(0, i).map((s, at) => [s, at] as const).reverse().find(([s]) => s.alias?.toLowerCase() === stage.base.toLowerCase());
    if (!earlier) return { externalBase: stage.base };
    i = earlier[1];
  }
  return {};
}

/**
 * The user's Dockerfile with its last stage named (when it had no name) and `stage` appended after it; the
 * alias the appended stage must build FROM.
 */
export function appendStage(text: string, stage: (base: string) => string): { dockerfile: string; base: string } {
  const instructions = parseInstructions(text);
  const stages = stagesOf(instructions);
  const last = stages[stages.length - 1];
  if (!last) throw new Error('the Dockerfile has no FROM');
  const lines = text.split('\n');
  let base = last.alias;
  if (!base) {
    base = APP_STAGE_ALIAS;
    const at = last.from.lastLine;
    lines[at] = `${lines[at].replace(/\s+$/, '')} AS ${base}`;
  }
  const body = lines.join('\n').replace(/\n*$/, '\n');
  return { dockerfile: `${body}\n${stage(base)}`, base };
}
