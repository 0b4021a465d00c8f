import { defineConfig } from 'vitest/config';

/**
 * Four projects, by what a test needs: `unit` nothing but Node (pure code, fake timers); `host` the host tools
 * (mke2fs, qemu-img, xmllint, GNU tar, shellcheck, the built deflate module); `docker` a Docker engine; `boot`
 * the engine and QEMU boots. They run one after another, each file on its own: two cores, and a boot under TCG
 * must not share them with a build.
 */
const project = (name: string, groupOrder: number, extra: Record<string, unknown> = {}) => ({
  extends: true as const,
  test: { name, include: [`test/${name}/**/*.test.ts`], sequence: { groupOrder }, ...extra },
});

export default defineConfig({
  test: {
    // Docker builds and QEMU boots under TCG are slow; each such test sets its own budget too.
    testTimeout: 60_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    projects: [project('unit', 0, { testTimeout: 10_000 }), project('host', 1), project('docker', 2), project('boot', 3)],
  },
});
