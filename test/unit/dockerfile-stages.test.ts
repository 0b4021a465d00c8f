import { describe, expect, it } from 'vitest';
import { appendStage, finalUser, parseInstructions, stagesOf } from '../../src/plan/dockerfile-stages.js';

const stage = (base: string) => `FROM ${base}\nRUN echo packages\n`;

describe("a user's Dockerfile, read for its stages", () => {
  it('joins continuations, skips comments, and honours the escape directive', () => {
    const ins = parseInstructions('# escape=`\n# a comment\nFROM debian `\n  AS build\nRUN a `\n# inside\n  && b\n');
    expect(ins.map((i) => [i.keyword, i.args])).toEqual([
      ['FROM', 'debian AS build'],
      ['RUN', 'a && b'],
    ]);
  });

  it('finds each stage, its base, alias and last USER', () => {
    const stages = stagesOf(parseInstructions('FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nUSER nobody\nfrom build as test\nFROM debian:bookworm\nUSER app\nUSER 1000:1000\n'));
    expect(stages.map((s) => [s.base, s.alias, s.user])).toEqual([
      ['golang:1.22', 'build', 'nobody'],
      ['build', 'test', undefined],
      ['debian:bookworm', undefined, '1000:1000'],
    ]);
  });

  it('follows the final stage through earlier stages to its USER, or to an image outside the file', () => {
    expect(finalUser(stagesOf(parseInstructions('FROM debian AS base\nUSER app\nFROM base AS final\nRUN x\n')))).toEqual({ user: 'app' });
    expect(finalUser(stagesOf(parseInstructions('FROM node:20 AS deps\nFROM deps\n')))).toEqual({ externalBase: 'node:20' });
  });
});

describe('appending the packages stage', () => {
  it('names an unnamed last stage, and builds the new stage FROM it', () => {
    const { dockerfile, base } = appendStage('FROM golang AS build\nRUN go build\nFROM debian:bookworm\nCOPY --from=build /app /app\nCMD ["/app"]', stage);
    expect(base).toBe('c2v-app');
    expect(dockerfile).toBe('FROM golang AS build\nRUN go build\nFROM debian:bookworm AS c2v-app\nCOPY --from=build /app /app\nCMD ["/app"]\n\nFROM c2v-app\nRUN echo packages\n');
  });

  it("keeps a last stage's own name, and the file's bytes before the new stage", () => {
    const text = 'FROM debian:bookworm \\\n  AS runtime\n\nRUN true\n\n\n';
    const { dockerfile, base } = appendStage(text, stage);
    expect(base).toBe('runtime');
    expect(dockerfile).toBe('FROM debian:bookworm \\\n  AS runtime\n\nRUN true\n\nFROM runtime\nRUN echo packages\n');
  });
});
