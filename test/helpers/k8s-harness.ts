import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';

/**
 * Runs a Kubernetes Job's pod under the Docker engine, standing in for the kubelet: init containers one after
 * another, then the containers, each as written in the manifest (image, command, args, env with $(VAR) expansion,
 * workingDir, volume mounts, the pod's and the container's securityContext, memory and CPU limits). The manifest is
 * the single source: a test substitutes only images (by a map) and env values (by variable name). Anything in the
 * pod spec the harness cannot honour is refused rather than ignored, so a passing test means the manifest as
 * written works. Not modelled: scheduling, probes, retries (backoffLimit; restartPolicy Never is required), image
 * pulls (local images only: a missing one fails at once, as ErrImageNeverPull would), and storage limits, which are
 * checked after the fact (emptyDir sizeLimit against the peak sampled, a container's ephemeral-storage limit against
 * its writable layer) and reported as violations, where the kubelet would evict the pod.
 */

/** The images the examples name: c2v's published image and upstream kaniko's executor. */
export const PUBLISHED_IMAGES = {
  c2v: 'registry.example.com/tools/c2v:0.1.0',
  kaniko: 'gcr.io/kaniko-project/executor:v1.24.0',
};

export interface HarnessOptions {
  /** Image substitutions: manifest image -> local image. */
  images?: Record<string, string>;
  /** Env values by variable name, for every container that declares the variable (declared by none: refused). */
  env?: Record<string, string>;
  /** Host folders for the pod's volumes other than emptyDir and configMap (a PVC, by volume name). */
  volumes?: Record<string, string>;
  /** Docker network for every container; default host, so the pod reaches registries on 127.0.0.1. */
  network?: string;
  /** Where emptyDir and configMap folders are made; default os.tmpdir(). */
  tmpDir?: string;
  /** Milliseconds between memory and disk samples; default 200. */
  sampleMs?: number;
}

export interface ContainerRun {
  name: string;
  init: boolean;
  /** The image that ran (after substitution). */
  image: string;
  /** Entrypoint and arguments as docker ran them (after $(VAR) expansion), for messages. */
  argv: string[];
  exitCode: number;
  oomKilled: boolean;
  /** stdout and stderr, interleaved as docker logs gives them. */
  logs: string;
  /** The line that says why it failed: the last one naming an error, else the last line. */
  errorLine?: string;
  seconds: number;
  /** cgroup peak: max_usage_in_bytes (v1) / memory.peak (v2), which counts the page cache too. */
  peakMemoryBytes?: number;
  /** Peak of the cgroup's anonymous memory (rss in v1, anon in v2): what a memory limit must hold. */
  peakAnonBytes?: number;
  /** Bytes written to the container's own root filesystem (docker's SizeRw): its ephemeral-storage use. */
  rootfsBytes?: number;
}

export interface PodRun {
  job: string;
  index?: number;
  ok: boolean;
  seconds: number;
  containers: ContainerRun[];
  /** emptyDir volumes: host folder, and the peak of the blocks allocated in it while the pod ran. */
  emptyDirs: Record<string, { dir: string; peakBytes: number; sizeLimitBytes?: number }>;
  /** The same for the volumes opts.volumes gave (a PVC); one shared by pods running at once counts them all. */
  givenVolumes: Record<string, { dir: string; peakBytes: number }>;
  /** What would have been refused or evicted on a real node (an emptyDir over its sizeLimit, a writable layer over its limit). */
  violations: string[];
  /** Removes the emptyDir and configMap folders. */
  cleanup(): void;
}

type Obj = Record<string, any>;

const POD_KEYS = new Set(['restartPolicy', 'initContainers', 'containers', 'volumes', 'securityContext', 'automountServiceAccountToken', 'hostNetwork', 'enableServiceLinks', 'terminationGracePeriodSeconds', 'serviceAccountName', 'nodeSelector', 'affinity', 'tolerations', 'priorityClassName']);
const CONTAINER_KEYS = new Set(['name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'workingDir', 'volumeMounts', 'securityContext', 'resources', 'terminationMessagePolicy']);
const SECURITY_KEYS = new Set(['runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'capabilities', 'privileged', 'seccompProfile', 'fsGroup', 'supplementalGroups', 'fsGroupChangePolicy']);

export function loadManifest(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS() as Obj;
  }).filter(Boolean);
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, m: 1e-3 };

/** A Kubernetes quantity ("512Mi", "1G", "500m", 3) as a number (bytes, or cores). */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(|k|M|G|T|Ki|Mi|Gi|Ti|m)$/.exec(q.trim());
  if (!m) throw new Error(`k8s-harness: quantity ${JSON.stringify(q)} is not one the harness reads`);
  return Number(m[1]) * UNITS[m[2]];
}

/**
 * Kubernetes' $(VAR) expansion of command, args and env values: $(NAME) becomes the value when NAME is defined
 * and stays as written when not; $$ becomes $. Anything else is left alone.
 */
export function expandVars(input: string, vars: Map<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 === input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i++;
      } else {
        const name = input.slice(i + 2, close);
        out += vars.has(name) ? vars.get(name) : `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i++;
    }
  }
  return out;
}

function refuseUnknown(what: string, obj: Obj | undefined, allowed: Set<string>): void {
  for (const k of Object.keys(obj ?? {})) if (!allowed.has(k)) throw new Error(`k8s-harness: ${what}.${k} is not something the harness runs; it would be ignored`);
}

/** Allocated bytes under a folder (what the kubelet's du-based accounting of an emptyDir sees). */
function allocatedBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      try {
        const s = lstatSync(p);
        total += s.blocks * 512;
        if (s.isDirectory()) walk(p);
      } catch {
        /* removed while walking */
      }
    }
  };
  try {
    walk(dir);
  } catch {
    /* folder gone */
  }
  return total;
}

/** The memory cgroup folder of a process, v1 or v2. */
function memoryCgroup(pid: number): { dir: string; v2: boolean } | undefined {
  try {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
    if (v1) return { dir: path.join('/sys/fs/cgroup/memory', v1.split(':')[2]), v2: false };
    const v2 = lines.find((l) => l.startsWith('0::'));
    if (v2) return { dir: path.join('/sys/fs/cgroup', v2.slice(3)), v2: true };
  } catch {
    /* exited already */
  }
  return undefined;
}

function readNumber(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function statValue(file: string, key: string): number | undefined {
  try {
    const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${key} `));
    return line ? Number(line.split(' ')[1]) : undefined;
  } catch {
    return undefined;
  }
}

function lastErrorLine(logs: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const lines = logs.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).filter(Boolean);
  return [...lines].reverse().find((l) => /error|fatal|failed/i.test(l)) ?? lines.at(-1);
}

function findDoc(docs: Obj[], kind: string, name?: string): Obj {
  const doc = docs.find((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  if (!doc) throw new Error(`k8s-harness: the manifest has no ${kind}${name ? ` named ${name}` : ''}`);
  return doc;
}

interface PodContext {
  docs: Obj[];
  job: Obj;
  opts: HarnessOptions;
  index?: number;
}

/** Runs one pod of the Job in `manifest` (a file or its parsed documents); for an Indexed Job, the pod of `index`. */
export async function runJobPod(manifest: string | Obj[], opts: HarnessOptions = {}, index?: number): Promise<PodRun> {
  const docs = typeof manifest === 'string' ? loadManifest(manifest) : manifest;
  const job = findDoc(docs, 'Job');
  const indexed = job.spec?.completionMode === 'Indexed';
  if (indexed && index === undefined) throw new Error('k8s-harness: an Indexed Job needs an index');
  if (!indexed && index !== undefined) throw new Error('k8s-harness: an index was given for a Job that is not Indexed');
  return runPod({ docs, job, opts, index });
}

/**
 * Runs the pods of an Indexed Job, spec.parallelism at a time (or `parallelism`), for the given indexes (default
 * 0 .. completions-1). Each pod gets its own emptyDirs; volumes from opts are shared, as a PVC is.
 */
export async function runIndexedJob(manifest: string | Obj[], opts: HarnessOptions & { indexes?: number[]; parallelism?: number } = {}): Promise<{ seconds: number; pods: PodRun[] }> {
  const docs = typeof manifest === 'string' ? loadManifest(manifest) : manifest;
  const job = findDoc(docs, 'Job');
  const completions = Number(job.spec?.completions ?? 1);
  const indexes = opts.indexes ?? [...Array(completions).keys()];
  const parallelism = opts.parallelism ?? Number(job.spec?.parallelism ?? 1);
  const started = Date.now();
  const pods: PodRun[] = [];
  const queue = [...indexes];
  await Promise.all(
    Array.from({ length: Math.min(parallelism, queue.length) }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) pods.push(await runJobPod(docs, opts, i));
    }),
  );
  pods.sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  return { seconds: (Date.now() - started) / 1000, pods };
}

async function runPod(ctx: PodContext): Promise<PodRun> {
  const { job, opts } = ctx;
  const spec: Obj = job.spec?.template?.spec ?? {};
  refuseUnknown('spec.template.spec', spec, POD_KEYS);
  if (spec.restartPolicy !== 'Never') throw new Error('k8s-harness: only restartPolicy: Never is run (the harness does not restart containers)');
  const podSecurity: Obj = spec.securityContext ?? {};
  refuseUnknown('spec.template.spec.securityContext', podSecurity, SECURITY_KEYS);
  const declared = new Set<string>();
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) for (const e of c.env ?? []) declared.add(e.name);
  for (const name of Object.keys(opts.env ?? {})) if (!declared.has(name)) throw new Error(`k8s-harness: no container declares the env variable ${name} the test sets`);

  const tmp = mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), `k8s-${job.metadata?.name ?? 'job'}${ctx.index === undefined ? '' : `-${ctx.index}`}-`));
  const volumes = prepareVolumes(ctx, spec.volumes ?? [], tmp, podSecurity.fsGroup);
  const run: PodRun = {
    job: job.metadata?.name,
    index: ctx.index,
    ok: false,
    seconds: 0,
    containers: [],
    emptyDirs: volumes.emptyDirs,
    givenVolumes: volumes.given,
    violations: [],
    cleanup: () => rmSync(tmp, { recursive: true, force: true }),
  };
  const started = Date.now();
  const deadline = job.spec?.activeDeadlineSeconds ? started + job.spec.activeDeadlineSeconds * 1000 : undefined;
  try {
    for (const c of spec.initContainers ?? []) {
      const r = await runContainer(ctx, c, true, podSecurity, volumes.mounts, deadline, run);
      run.containers.push(r);
      if (r.exitCode !== 0) return run;
    }
    const results = await Promise.all((spec.containers ?? []).map((c: Obj) => runContainer(ctx, c, false, podSecurity, volumes.mounts, deadline, run)));
    run.containers.push(...results);
    run.ok = results.every((r) => r.exitCode === 0);
    return run;
  } finally {
    run.seconds = (Date.now() - started) / 1000;
    for (const [name, e] of Object.entries(run.emptyDirs)) {
      if (e.sizeLimitBytes !== undefined && e.peakBytes > e.sizeLimitBytes) run.violations.push(`emptyDir ${name} reached ${e.peakBytes} bytes, over its sizeLimit of ${e.sizeLimitBytes}: the pod would be evicted`);
    }
    if (run.violations.length) run.ok = false;
  }
}

function prepareVolumes(ctx: PodContext, volumes: Obj[], tmp: string, fsGroup?: number) {
  const mounts = new Map<string, string>();
  const emptyDirs: PodRun['emptyDirs'] = {};
  const given: PodRun['givenVolumes'] = {};
  // The kubelet hands the pod's volumes to fsGroup: group-owned, group-writable, setgid directories.
  const toGroup = (p: string, dirMode: number) => {
    if (fsGroup === undefined) return;
    chownSync(p, statSync(p).uid, fsGroup);
    chmodSync(p, dirMode | 0o2070);
  };
  for (const v of volumes) {
    const host = path.join(tmp, v.name);
    if (v.emptyDir) {
      if (v.emptyDir.medium) throw new Error(`k8s-harness: emptyDir ${v.name} with medium ${v.emptyDir.medium} is not run`);
      mkdirSync(host);
      chmodSync(host, 0o777);
      toGroup(host, 0o777);
      emptyDirs[v.name] = { dir: host, peakBytes: 0, sizeLimitBytes: v.emptyDir.sizeLimit === undefined ? undefined : parseQuantity(v.emptyDir.sizeLimit) };
      mounts.set(v.name, host);
    } else if (v.configMap) {
      const cm = findDoc(ctx.docs, 'ConfigMap', v.configMap.name);
      mkdirSync(host);
      const items: { key: string; path: string }[] = v.configMap.items ?? Object.keys(cm.data ?? {}).map((key) => ({ key, path: key }));
      for (const it of items) {
        const file = path.join(host, it.path);
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, String(cm.data[it.key]), { mode: v.configMap.defaultMode ?? 0o644 });
      }
      chmodSync(host, 0o755);
      mounts.set(v.name, host);
    } else {
      const dir = ctx.opts.volumes?.[v.name];
      if (!dir) throw new Error(`k8s-harness: volume ${v.name} (${Object.keys(v).filter((k) => k !== 'name').join(', ')}) needs a host folder in opts.volumes`);
      toGroup(dir, statSync(dir).mode & 0o7777);
      given[v.name] = { dir, peakBytes: 0 };
      mounts.set(v.name, dir);
    }
  }
  return { mounts, emptyDirs, given };
}

async function imageUser(image: string): Promise<string> {
  const r = await execa('docker', ['image', 'inspect', '-f', '{{.Config.User}}', image], { reject: false });
  if (r.exitCode !== 0) throw new Error(`k8s-harness: image ${image} is not in the engine (the harness never pulls)`);
  return String(r.stdout).trim();
}

async function runContainer(ctx: PodContext, c: Obj, init: boolean, podSecurity: Obj, mounts: Map<string, string>, deadline: number | undefined, pod: PodRun): Promise<ContainerRun> {
  const { opts } = ctx;
  const what = `${init ? 'initContainers' : 'containers'}[${c.name}]`;
  refuseUnknown(what, c, CONTAINER_KEYS);
  refuseUnknown(`${what}.securityContext`, c.securityContext, SECURITY_KEYS);
  const image = opts.images?.[c.image] ?? c.image;
  const sec: Obj = { ...podSecurity, ...(c.securityContext ?? {}) };

  // Env in order: each value may refer to the ones above it; the Job controller adds the completion index.
  const vars = new Map<string, string>();
  if (ctx.index !== undefined) vars.set('JOB_COMPLETION_INDEX', String(ctx.index));
  for (const e of c.env ?? []) {
    let value: string;
    if (opts.env && e.name in opts.env) value = opts.env[e.name];
    else if (e.value !== undefined) value = expandVars(String(e.value), vars);
    else if (e.valueFrom?.configMapKeyRef) value = String(findDoc(ctx.docs, 'ConfigMap', e.valueFrom.configMapKeyRef.name).data?.[e.valueFrom.configMapKeyRef.key] ?? '');
    else throw new Error(`k8s-harness: ${what} env ${e.name} has a source the harness does not read`);
    vars.set(e.name, value);
  }
  const command: string[] | undefined = c.command?.map((s: string) => expandVars(s, vars));
  const args: string[] | undefined = c.args?.map((s: string) => expandVars(s, vars));

  // runAsNonRoot, as the kubelet checks it: a numeric non-zero uid, from the pod or the image.
  const uid = sec.runAsUser ?? (await imageUser(image)).split(':')[0];
  if (sec.runAsNonRoot && !(/^\d+$/.test(String(uid)) && Number(uid) !== 0)) {
    throw new Error(`k8s-harness: ${what} has runAsNonRoot and would run as ${JSON.stringify(uid) || 'root'}: the kubelet refuses it (CreateContainerConfigError)`);
  }

  const name = `k8s-harness-${pod.job}-${ctx.index ?? 'pod'}-${c.name}-${process.pid}-${Date.now().toString(36)}`;
  const docker: string[] = ['create', '--name', name, '--pull', 'never', '--network', opts.network ?? 'host', '--label', 'c2v.k8s-harness=1'];
  for (const [k, v] of vars) docker.push('--env', `${k}=${v}`);
  if (sec.runAsUser !== undefined || sec.runAsGroup !== undefined) docker.push('--user', `${sec.runAsUser ?? uid}${sec.runAsGroup !== undefined ? `:${sec.runAsGroup}` : ''}`);
  for (const g of [...(sec.fsGroup !== undefined ? [sec.fsGroup] : []), ...(sec.supplementalGroups ?? [])]) docker.push('--group-add', String(g));
  if (sec.readOnlyRootFilesystem) docker.push('--read-only');
  if (sec.allowPrivilegeEscalation === false) docker.push('--security-opt', 'no-new-privileges');
  if (sec.privileged) docker.push('--privileged');
  // Docker's default seccomp profile is the runtime default; the kubelet's default without one is Unconfined.
  const seccomp = sec.seccompProfile?.type;
  if (seccomp !== 'RuntimeDefault') {
    if (seccomp !== undefined && seccomp !== 'Unconfined') throw new Error(`k8s-harness: seccompProfile ${seccomp} is not run`);
    docker.push('--security-opt', 'seccomp=unconfined');
  }
  for (const cap of sec.capabilities?.drop ?? []) docker.push('--cap-drop', cap);
  for (const cap of sec.capabilities?.add ?? []) docker.push('--cap-add', cap);
  const limits: Obj = c.resources?.limits ?? {};
  if (limits.memory !== undefined) {
    const bytes = String(Math.floor(parseQuantity(limits.memory)));
    docker.push('--memory', bytes, '--memory-swap', bytes); // no swap, as on a kubelet
  }
  if (limits.cpu !== undefined) docker.push('--cpus', String(parseQuantity(limits.cpu)));
  for (const m of c.volumeMounts ?? []) {
    const host = mounts.get(m.name);
    if (!host) throw new Error(`k8s-harness: ${what} mounts ${m.name}, which the pod does not declare`);
    const src = m.subPath ? path.join(host, m.subPath) : host;
    docker.push('--volume', `${src}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
  }
  if (c.workingDir) docker.push('--workdir', c.workingDir);
  if (command) docker.push('--entrypoint', command[0]);
  docker.push(image, ...(command ? command.slice(1) : []), ...(args ?? []));
  const argv = [...(command ?? ['<entrypoint>']), ...(args ?? (command ? [] : ['<cmd>']))];

  const created = await execa('docker', docker, { reject: false });
  if (created.exitCode !== 0) {
    return { name: c.name, init, image, argv, exitCode: -1, oomKilled: false, logs: String(created.stderr), errorLine: lastErrorLine(String(created.stderr)), seconds: 0 };
  }
  let peakMemoryBytes: number | undefined;
  let peakAnonBytes: number | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let killer: NodeJS.Timeout | undefined;
  try {
    await execa('docker', ['start', name]);
    const pid = Number((await execa('docker', ['inspect', '-f', '{{.State.Pid}}', name])).stdout);
    const cg = pid > 0 ? memoryCgroup(pid) : undefined;
    const sample = () => {
      if (cg) {
        const peak = readNumber(path.join(cg.dir, cg.v2 ? 'memory.peak' : 'memory.max_usage_in_bytes'));
        const anon = statValue(path.join(cg.dir, 'memory.stat'), cg.v2 ? 'anon' : 'total_rss');
        if (peak !== undefined && !Number.isNaN(peak)) peakMemoryBytes = Math.max(peakMemoryBytes ?? 0, peak);
        if (anon !== undefined) peakAnonBytes = Math.max(peakAnonBytes ?? 0, anon);
      }
      for (const e of [...Object.values(pod.emptyDirs), ...Object.values(pod.givenVolumes)]) e.peakBytes = Math.max(e.peakBytes, allocatedBytes(e.dir));
    };
    sample();
    sampler = setInterval(sample, opts.sampleMs ?? 200);
    if (deadline) killer = setTimeout(() => void execa('docker', ['kill', name], { reject: false }), Math.max(0, deadline - Date.now()));
    await execa('docker', ['wait', name]);
    sample();
  } finally {
    clearInterval(sampler);
    clearTimeout(killer);
  }
  const info = JSON.parse(String((await execa('docker', ['inspect', '--size', name])).stdout))[0];
  const logs = String((await execa('docker', ['logs', name], { all: true, reject: false })).all ?? '');
  await execa('docker', ['rm', '-f', name], { reject: false });
  const exitCode = Number(info.State.ExitCode);
  const seconds = (Date.parse(info.State.FinishedAt) - Date.parse(info.State.StartedAt)) / 1000;
  const rootfsBytes = Number(info.SizeRw ?? 0);
  const storageLimit = limits['ephemeral-storage'] === undefined ? undefined : parseQuantity(limits['ephemeral-storage']);
  if (storageLimit !== undefined && rootfsBytes > storageLimit) pod.violations.push(`${what} wrote ${rootfsBytes} bytes to its root filesystem, over its ephemeral-storage limit of ${storageLimit}: the pod would be evicted`);
  if (deadline && Date.now() >= deadline) pod.violations.push(`${what} was still running at activeDeadlineSeconds`);
  return { name: c.name, init, image, argv, exitCode, oomKilled: Boolean(info.State.OOMKilled), logs, errorLine: exitCode === 0 ? undefined : lastErrorLine(logs), seconds, peakMemoryBytes, peakAnonBytes, rootfsBytes };
}
