/**
 * kaniko as c2v's builder: the executor image runs as a container of the Docker engine (as kaniko runs in a
 * pipeline's pod), builds a context into a `docker save`-style tarball, and c2v reads that tarball itself. kaniko
 * pulls base images from registries only, and cannot build FROM its own output, so a Dockerfile gets c2v's
 * packages stage appended before its one build (ImageBuilder.oneBuild).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import createDebug from 'debug';
import Docker from 'dockerode';
import { C2vError } from '../errors.js';
import { isLoopbackRegistry, parseReference } from '../formats/oci/reference.js';
import { registerCleanup } from './cleanup.js';
import { DockerEngine, HOST_ID, HOST_LABEL, SESSION_ID } from './docker.js';
import { makeScratchDir } from './workspace.js';
import { SESSION_LABEL, type BuildRequest, type ImageBuilder } from './engine.js';
import type { TarImageStore } from './oci/tar-image-store.js';

const debug = createDebug('c2v:kaniko');

/** Upstream's executor image; --kaniko-image or C2V_KANIKO_IMAGE name another (a mirror, a pinned digest). */
export const DEFAULT_KANIKO_IMAGE = 'gcr.io/kaniko-project/executor:v1.24.0';

export class KanikoBuilder implements ImageBuilder {
  readonly name = 'kaniko';
  /** kaniko cannot build FROM an image it built: the packages stage goes into the first build. */
  readonly oneBuild = true;
  private scratch: Awaited<ReturnType<typeof makeScratchDir>> | undefined;
  private unregister = (): void => undefined;
  private builds = 0;

  constructor(
    readonly source: TarImageStore,
    private readonly opts: { image: string; workParent: string; insecureRegistries: string[]; engine?: DockerEngine; docker?: Docker },
  ) {}

  async build(req: BuildRequest): Promise<string> {
    const docker = this.opts.docker ?? new Docker();
    const engine = this.opts.engine ?? new DockerEngine(docker);
    await engine.ping();
    await this.ensureExecutor(engine);
    const out = await this.outDir();
    const tar = `image-${++this.builds}.tar`;
    const args = [
      '--context',
      'dir:///workspace',
      '--dockerfile',
      `/workspace/${req.dockerfile}`,
      '--no-push',
      '--destination',
      `c2v.invalid/${req.tag.replace(/^[^/]*\//, '')}`,
      '--tar-path',
      `/c2v-out/${tar}`,
      ...Object.entries(req.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
      ...Object.entries(req.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      ...insecureFlags(this.opts.insecureRegistries, req),
    ];
    debug('kaniko %s', args.join(' '));
    const container = await docker.createContainer({
      Image: this.opts.image,
      Cmd: args,
      Labels: { [SESSION_LABEL]: SESSION_ID, [HOST_LABEL]: HOST_ID },
      HostConfig: { Binds: [`${req.contextDir}:/workspace`, `${out}:/c2v-out`], NetworkMode: 'host' },
    });
    const removeContainer = () => container.remove({ force: true }).catch(() => undefined);
    const unregister = registerCleanup('kaniko container', removeContainer);
    const last: string[] = [];
    try {
      const logs = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
      const lines = new PassThrough();
      docker.modem.demuxStream(logs, lines, lines);
      let partial = '';
      lines.on('data', (chunk: Buffer) => {
        const text = partial + chunk.toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          const clean = line.replace(/\x1b\[[0-9;]*m/g, '').trimEnd();
          if (!clean) continue;
          last.push(clean);
          if (last.length > 30) last.shift();
          req.onLog?.(clean);
        }
      });
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      if (StatusCode !== 0) {
        const reason = [...last].reverse().find((l) => /error|failed/i.test(l)) ?? last[last.length - 1] ?? 'no output';
        throw new C2vError('build', `the kaniko build failed (exit ${StatusCode}): ${reason.replace(/^\S*\s*(ERRO|error)\S*\s*/i, '')}`, { detail: last.join('\n') });
      }
    } finally {
      await removeContainer();
      unregister();
    }
    const tarPath = path.join(out, tar);
    if (!(await stat(tarPath).catch(() => undefined))?.isFile()) {
      throw new C2vError('build', `kaniko finished without writing ${tarPath}: check that the executor image ${this.opts.image} is kaniko`);
    }
    return this.source.add(tarPath, req.tag);
  }

  /** Removes the tarballs; safe to call twice. */
  async close(): Promise<void> {
    await this.scratch?.dispose();
    this.scratch = undefined;
    this.unregister();
  }

  private async outDir(): Promise<string> {
    if (!this.scratch) {
      const scratch = await makeScratchDir(this.opts.workParent, '.c2v-kaniko-');
      this.scratch = scratch;
      this.unregister = registerCleanup('kaniko tarballs', scratch.dispose, scratch.disposeSync);
    }
    return this.scratch.dir;
  }

  private async ensureExecutor(engine: DockerEngine): Promise<void> {
    if (await engine.inspect(this.opts.image)) return;
    try {
      await engine.pull(this.opts.image);
    } catch (e) {
      throw new C2vError('build', `the kaniko executor image ${this.opts.image} is not in the engine and could not be pulled: load it (docker load), or name one the engine has with --kaniko-image or C2V_KANIKO_IMAGE`, { cause: e });
    }
  }
}

/**
 * kaniko speaks plain HTTP only to registries it is told about: the ones the user named, and loopback ones c2v
 * reaches in plain HTTP on its own (a base named by a build argument or a FROM line).
 */
function insecureFlags(insecure: string[], req: BuildRequest): string[] {
  const hosts = new Set(insecure);
  for (const ref of [...Object.values(req.buildArgs ?? {}), ...(req.fromImages ?? [])]) {
    try {
      const { registry } = parseReference(ref);
      if (isLoopbackRegistry(registry)) hosts.add(registry);
    } catch {
      /* not a reference */
    }
  }
  if (hosts.size === 0) return [];
  return ['--insecure-pull', ...[...hosts].flatMap((h) => ['--insecure-registry', h])];
}
