import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import createDebug from 'debug';
import Docker from 'dockerode';
import { C2vError } from '../errors.js';
import { readBody, readTar, textOf, type TarKind } from '../formats/tar/index.js';
import { HOST_ID, isProcessAlive } from './cleanup.js';
import { SESSION_LABEL, type BuildRequest, type ImageBackends, type ImageBuilder, type ImageInfo, type Janitor, type PullingSource, type RootfsSource } from './engine.js';

const debug = createDebug('c2v:engine');

/** A run's id, put on everything it creates in the engine so a later run can tell leftovers apart. */
export const SESSION_ID = `${process.pid}-${randomUUID().slice(0, 8)}`;

/** Where SESSION_ID's pid means something (see HOST_ID); containers of other hosts are judged by age alone. */
export const HOST_LABEL = 'c2v.host';
export { HOST_ID };

/** Leftovers of runs on other hosts (whose pids cannot be checked from here) are swept once they are this old. */
const FOREIGN_LEFTOVER_SECONDS = 24 * 3600;

type ProgressEvent = { stream?: string; status?: string; progress?: string; error?: string; errorDetail?: { message?: string }; aux?: { ID?: string } };

function engineUnavailable(e: unknown): C2vError {
  const where = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  const code = (e as { code?: string }).code;
  if (code === 'EACCES') {
    return new C2vError('engine', `no permission to talk to the Docker engine at ${where}: run as a member of the docker group, or as root`, { cause: e });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new C2vError('engine', `the Docker engine at ${where} dropped the connection (${code}): check that it is still running (docker info) and retry`, { cause: e });
  }
  return new C2vError(
    'engine',
    `no Docker engine answers at ${where} (${code ?? 'no answer'}): start one (sudo systemctl start docker, or sudo dockerd &; in this repository sudo bash scripts/start-dockerd) or point DOCKER_HOST at a running engine`,
    { cause: e },
  );
}

const CONNECTION_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTSOCK']);

function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code !== undefined && CONNECTION_ERRORS.has(code);
}

/** The Docker engine: a source that pulls, a builder, and the janitor of the containers c2v creates in it. */
export class DockerEngine implements PullingSource, ImageBuilder, Janitor {
  readonly name = 'docker';
  readonly source = this;
  private readonly docker: Docker;

  constructor(docker = new Docker()) {
    this.docker = docker;
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (e) {
      throw engineUnavailable(e);
    }
  }

  async inspect(ref: string): Promise<ImageInfo | undefined> {
    let data: Docker.ImageInspectInfo;
    try {
      data = await this.docker.getImage(ref).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      if (isConnectionError(e)) throw engineUnavailable(e);
      throw new C2vError('engine', `could not inspect image ${ref}: ${(e as Error).message}`, { cause: e });
    }
    const c = data.Config ?? ({} as Docker.ImageInspectInfo['Config']);
    return {
      id: data.Id,
      ref,
      architecture: data.Architecture,
      os: data.Os,
      sizeBytes: data.Size,
      created: data.Created,
      config: {
        entrypoint: toArray(c.Entrypoint),
        cmd: toArray(c.Cmd),
        env: c.Env ?? [],
        workingDir: c.WorkingDir ?? '',
        user: c.User ?? '',
        exposedPorts: Object.keys(c.ExposedPorts ?? {}),
        labels: c.Labels ?? {},
      },
    };
  }

  async pull(ref: string, onLog?: (line: string) => void): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(ref);
    } catch (e) {
      if (isConnectionError(e)) throw engineUnavailable(e);
      throw new C2vError('input', `image ${ref} is not present locally and could not be pulled: ${firstLine((e as { json?: { message?: string } }).json?.message ?? (e as Error).message)}`, { cause: e });
    }
    await this.follow(stream, onLog, (msg) => new C2vError('input', `pulling ${ref} failed: ${msg}`));
  }

  async build(req: BuildRequest): Promise<string> {
    const src = await readdir(req.contextDir);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(
        { context: req.contextDir, src },
        { t: req.tag, dockerfile: req.dockerfile, rm: true, forcerm: true, labels: req.labels ?? {}, buildargs: req.buildArgs ?? {} },
      );
    } catch (e) {
      if (isConnectionError(e)) throw engineUnavailable(e);
      throw new C2vError('build', `docker build of ${req.contextDir} could not start: ${firstLine((e as Error).message)}`, { cause: e });
    }
    let imageId: string | undefined;
    const last: string[] = [];
    await this.follow(
      stream,
      (line) => {
        last.push(line);
        if (last.length > 20) last.shift();
        req.onLog?.(line);
      },
      (msg) => new C2vError('build', `the Dockerfile build failed: ${msg}`, { detail: last.join('\n') }),
      (ev) => {
        if (ev.aux?.ID) imageId = ev.aux.ID;
      },
    );
    if (!imageId) {
      const info = await this.inspect(req.tag);
      if (!info) throw new C2vError('build', `docker build finished but produced no image tagged ${req.tag}`);
      imageId = info.id;
    }
    return imageId;
  }

  async openRootfs(imageId: string): Promise<RootfsSource> {
    let container: Docker.Container;
    try {
      // Never started; the command only has to exist because the engine refuses images without one.
      container = await this.docker.createContainer({
        Image: imageId,
        Cmd: ['/c2v-never-started'],
        Entrypoint: [],
        Labels: { [SESSION_LABEL]: SESSION_ID, [HOST_LABEL]: HOST_ID },
        NetworkDisabled: true,
      });
    } catch (e) {
      if (isConnectionError(e)) throw engineUnavailable(e);
      throw new C2vError('engine', `could not create a container from ${imageId.slice(0, 19)}: ${firstLine((e as Error).message)}`, { cause: e });
    }
    debug('created container %s', container.id);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      try {
        await container.remove({ force: true, v: true });
        debug('removed container %s', container.id);
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode !== 404) debug('could not remove %s: %s', container.id, (e as Error).message);
      }
    };
    const readFile = async (file: string, depth = 0): Promise<Buffer | undefined> => {
      let archive: NodeJS.ReadableStream;
      try {
        archive = await container.getArchive({ path: file });
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) return undefined;
        if (isConnectionError(e)) throw engineUnavailable(e);
        throw new C2vError('engine', `reading ${file} from the image failed: ${firstLine((e as Error).message)}`, { cause: e });
      }
      const entry = await firstTarEntry(archive);
      if (entry?.kind === 'symlink' && entry.linkname && depth < 4) {
        const target = path.posix.resolve(path.posix.dirname(file), entry.linkname);
        return readFile(target, depth + 1);
      }
      return entry?.kind === 'file' ? entry.data : undefined;
    };
    const exportStream = async () => {
      try {
        return (await container.export()) as unknown as Readable;
      } catch (e) {
        if (isConnectionError(e)) throw engineUnavailable(e);
        throw new C2vError('engine', `exporting the container filesystem failed: ${firstLine((e as Error).message)}`, { cause: e });
      }
    };
    const listDir = async (dir: string): Promise<string[]> => {
      let archive: NodeJS.ReadableStream;
      try {
        archive = await container.getArchive({ path: dir });
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) return [];
        if (isConnectionError(e)) throw engineUnavailable(e);
        throw new C2vError('engine', `listing ${dir} in the image failed: ${firstLine((e as Error).message)}`, { cause: e });
      }
      return tarChildNames(archive);
    };
    const exists = async (p: string): Promise<boolean> => {
      try {
        // HEAD of the archive endpoint: the engine stats the path and sends no tar.
        const res = (await container.infoArchive({ path: p })) as Readable;
        res.resume();
        return true;
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) return false;
        if (isConnectionError(e)) throw engineUnavailable(e);
        throw new C2vError('engine', `looking for ${p} in the image failed: ${firstLine((e as Error).message)}`, { cause: e });
      }
    };
    return { readFile, listDir, exists, export: exportStream, release };
  }

  /**
   * Removes the containers killed runs left (labelled with their session). A session whose process still runs
   * is a parallel conversion and is left alone; so is a recent one from another host or pid namespace sharing
   * this engine, whose pid cannot be checked from here. Never throws: sweeping is a courtesy.
   */
  async sweep(): Promise<number> {
    let leftovers: Docker.ContainerInfo[];
    try {
      leftovers = await this.docker.listContainers({ all: true, filters: { label: [SESSION_LABEL] } });
    } catch (e) {
      debug('sweep: listing containers failed: %s', (e as Error).message);
      return 0;
    }
    let removed = 0;
    const now = Date.now() / 1000;
    for (const c of leftovers) {
      if (!isLeftover(c.Labels ?? {}, c.Created, now)) continue;
      await this.docker.getContainer(c.Id).remove({ force: true, v: true }).then(
        () => {
          removed++;
          debug('swept container %s of session %s', c.Id.slice(0, 12), c.Labels[SESSION_LABEL]);
        },
        (e: Error) => debug('sweep: could not remove %s: %s', c.Id.slice(0, 12), e.message),
      );
    }
    if (removed) debug('swept %d leftover container(s)', removed);
    return removed;
  }

  private follow(
    stream: NodeJS.ReadableStream,
    onLog: ((line: string) => void) | undefined,
    toError: (message: string) => C2vError,
    onEvent?: (ev: ProgressEvent) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let failure: C2vError | undefined;
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (failure) reject(failure);
          else if (err) reject(isConnectionError(err) ? engineUnavailable(err) : toError(firstLine(err.message)));
          else resolve();
        },
        (ev: ProgressEvent) => {
          onEvent?.(ev);
          // The engine reports build failures in-band; a stream that "ends fine" after errorDetail is a failed build.
          if (ev.errorDetail || ev.error) {
            failure ??= toError(firstLine(ev.errorDetail?.message ?? ev.error ?? 'unknown error'));
            return;
          }
          const text = ev.stream ?? (ev.status ? `${ev.status}${ev.progress ? ` ${ev.progress}` : ''}` : '');
          for (const line of text.split('\n')) if (line.trim()) onLog?.(line.trimEnd());
        },
      );
    });
  }
}

/** The engine as every role a conversion may use, once it answers. */
export async function dockerBackends(): Promise<ImageBackends> {
  const engine = new DockerEngine();
  await engine.ping();
  return { source: engine, builder: engine, janitor: engine };
}

function toArray(v: string | string[] | undefined | null): string[] {
  if (!v) return [];
  return Array.isArray(v) ? v : [v];
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0];
}

/** Whether a labelled container is what a run that no longer exists left behind. */
export function isLeftover(labels: Record<string, string>, createdSeconds: number, nowSeconds: number, self = { session: SESSION_ID, host: HOST_ID }): boolean {
  const owner = labels[SESSION_LABEL] ?? '';
  if (owner === self.session) return false;
  const host = labels[HOST_LABEL];
  if (host !== undefined && host !== self.host) return nowSeconds - createdSeconds > FOREIGN_LEFTOVER_SECONDS;
  const pid = Number(owner.split('-')[0]);
  return !isProcessAlive(pid);
}

const ARCHIVE = { source: "the engine's archive", endMarkerOptional: true };

/** The first entry of a small tar (the engine's archive of one path), with its data when it is a file. */
async function firstTarEntry(stream: NodeJS.ReadableStream): Promise<{ kind: TarKind; linkname: string; data: Buffer } | undefined> {
  for await (const entry of readTar(stream, ARCHIVE)) {
    return { kind: entry.kind, linkname: textOf(entry.header.linkname), data: entry.kind === 'file' ? await readBody(entry) : Buffer.alloc(0) };
  }
  return undefined;
}

/** The names one level below the archived directory; file data is skipped, never kept. */
async function tarChildNames(stream: NodeJS.ReadableStream): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of readTar(stream, ARCHIVE)) {
    const parts = textOf(entry.header.name).replace(/\/+$/, '').split('/');
    if (parts.length === 2 && parts[1]) names.push(parts[1]);
  }
  return names;
}
