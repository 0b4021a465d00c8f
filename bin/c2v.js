#!/usr/bin/env node
import os from 'node:os';

// VMDK grains deflate on libuv's pool; its default of 4 threads would cap the parallelism on larger machines.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, os.availableParallelism() + 2));
await import('../dist/main.js');
