import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Docker builds and QEMU boots under TCG are slow; each such test sets its own budget too.
    testTimeout: 60_000,
    hookTimeout: 900_000,
    // Two cores: the e2e files each boot VMs; running them one after another keeps boots within their timeouts.
    fileParallelism: false,
  },
});
