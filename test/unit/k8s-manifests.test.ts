import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/env.js';
import { loadManifest, parseQuantity, PUBLISHED_IMAGES } from '../helpers/k8s-harness.js';

/**
 * The Kubernetes examples against the API schema (kubernetes-models 4.5.1: Kubernetes 1.33's OpenAPI, validated
 * with ajv), against unknown fields (which the schema lets through and `kubectl apply`'s strict field validation
 * refuses: checked with TypeScript's excess-property rule on kubernetes-models' types), and against the Pod
 * Security Standards' rules that a manifest shows.
 */
const DIR = path.join(PROJECT_ROOT, 'examples', 'kubernetes');
const FILES = ['job.yaml', 'indexed-job.yaml'];
const MODELS: Record<string, { cls: { new (d: any): { validate(): void } }; type: string; module: string }> = {
  Job: { cls: Job, type: 'IJob', module: 'kubernetes-models/batch/v1/Job' },
  ConfigMap: { cls: ConfigMap, type: 'IConfigMap', module: 'kubernetes-models/v1/ConfigMap' },
  PersistentVolumeClaim: { cls: PersistentVolumeClaim, type: 'IPersistentVolumeClaim', module: 'kubernetes-models/v1/PersistentVolumeClaim' },
};
const docs = Object.fromEntries(FILES.map((f) => [f, loadManifest(path.join(DIR, f))]));
const jobOf = (f: string) => docs[f].find((d) => d.kind === 'Job')!;
const podOf = (f: string) => jobOf(f).spec.template.spec;
const containersOf = (f: string): any[] => [...(podOf(f).initContainers ?? []), ...podOf(f).containers];

/** Type-checks each document as its kubernetes-models interface; returns the compiler's complaints. */
function unknownFields(file: string, documents: any[]): string[] {
  const source = path.join(PROJECT_ROOT, 'test', 'unit', `__k8s_${path.basename(file, '.yaml')}.ts`);
  const text = documents
    .map((d, i) => `import type { ${MODELS[d.kind].type} as T${i} } from '${MODELS[d.kind].module}';\nexport const d${i}: T${i} = ${JSON.stringify(d)};`)
    .join('\n');
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (f === source ? ts.createSourceFile(f, text, lang) : read(f, lang, ...rest));
  return ts.getPreEmitDiagnostics(ts.createProgram([source], options, host)).map((d) => `${file}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
}

const BASELINE_CAPS = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

/** The Pod Security Standards rules (v1.33) a manifest shows, for one container of a pod, by level. */
function podSecurityViolations(pod: any, c: any): { baseline: string[]; restricted: string[] } {
  const sec = { ...pod.securityContext, ...c.securityContext };
  const baseline: string[] = [];
  const restricted: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) baseline.push('host namespaces');
  if (sec.privileged) baseline.push('privileged');
  for (const cap of sec.capabilities?.add ?? []) if (!BASELINE_CAPS.has(cap)) baseline.push(`capability ${cap}`);
  if ((pod.volumes ?? []).some((v: any) => v.hostPath)) baseline.push('hostPath volume');
  if ((c.ports ?? []).some((p: any) => p.hostPort)) baseline.push('hostPort');
  if (sec.seccompProfile?.type === 'Unconfined') baseline.push('seccomp Unconfined');
  if (sec.procMount && sec.procMount !== 'Default') baseline.push('procMount');
  for (const v of pod.volumes ?? []) if (!RESTRICTED_VOLUMES.some((k) => k in v)) restricted.push(`volume type of ${v.name}`);
  if (sec.allowPrivilegeEscalation !== false) restricted.push('allowPrivilegeEscalation not false');
  if (sec.runAsNonRoot !== true) restricted.push('runAsNonRoot not true');
  if (sec.runAsUser === 0) restricted.push('runAsUser 0');
  if (!['RuntimeDefault', 'Localhost'].includes(sec.seccompProfile?.type)) restricted.push('seccompProfile not RuntimeDefault');
  if (!(sec.capabilities?.drop ?? []).includes('ALL')) restricted.push('capabilities not dropping ALL');
  if ((sec.capabilities?.add ?? []).some((cap: string) => cap !== 'NET_BIND_SERVICE')) restricted.push(`capabilities added: ${sec.capabilities.add.join(', ')}`);
  return { baseline, restricted: [...baseline, ...restricted] };
}

describe('the Kubernetes examples', () => {
  it.each(FILES)('%s validates against the Kubernetes API schema', (file) => {
    expect(docs[file].map((d) => d.kind).sort()).toEqual(file === 'job.yaml' ? ['Job', 'PersistentVolumeClaim'] : ['ConfigMap', 'Job']);
    for (const d of docs[file]) expect(() => new MODELS[d.kind].cls(d).validate(), `${file} ${d.kind}`).not.toThrow();
  });

  it('the schema check itself refuses what the API refuses', () => {
    const bad = structuredClone(jobOf('job.yaml'));
    bad.spec.template.spec.containers[0].resources.limits.memory = 'a lot';
    expect(() => new Job(bad).validate()).toThrow(/quantity/);
  });

  it('no document has a field the API does not know (as kubectl apply --validate=strict)', () => {
    for (const file of FILES) expect(unknownFields(file, docs[file])).toEqual([]);
    const typo = structuredClone(jobOf('job.yaml'));
    typo.spec.template.spec.containers[0].securityContex = {};
    expect(unknownFields('typo.yaml', [typo]).join('\n')).toMatch(/securityContex/);
  }, 30_000);

  it("c2v's containers meet the restricted profile, with a read-only root filesystem and a non-root uid", () => {
    for (const file of FILES) {
      const c2v = containersOf(file).filter((c) => c.image === PUBLISHED_IMAGES.c2v);
      expect(c2v.length, file).toBeGreaterThan(0);
      for (const c of c2v) {
        expect(podSecurityViolations(podOf(file), c).restricted, `${file} ${c.name}`).toEqual([]);
        const sec = { ...podOf(file).securityContext, ...c.securityContext };
        expect(sec.readOnlyRootFilesystem, `${file} ${c.name}`).toBe(true);
        expect(sec.runAsUser, `${file} ${c.name}`).toBe(10001);
      }
    }
  });

  it('the Indexed Job runs only c2v, so its whole pod is restricted', () => {
    expect(containersOf('indexed-job.yaml').map((c) => c.image)).toEqual([PUBLISHED_IMAGES.c2v]);
  });

  it('kaniko breaks only the restricted rules its comment and the README name, and meets baseline', () => {
    const kaniko = containersOf('job.yaml').find((c) => c.image === PUBLISHED_IMAGES.kaniko);
    const v = podSecurityViolations(podOf('job.yaml'), kaniko);
    expect(v.baseline).toEqual([]);
    const caps: string[] = kaniko.securityContext.capabilities.add;
    expect(v.restricted).toEqual(['runAsNonRoot not true', 'runAsUser 0', `capabilities added: ${caps.join(', ')}`]);
    const named = caps.slice(0, -1).join(', ') + ' and ' + caps.at(-1);
    expect(readFileSync(path.join(DIR, 'job.yaml'), 'utf8').replace(/\n# /g, ' ')).toContain(named);
    expect(readFileSync(path.join(DIR, 'README.md'), 'utf8').replace(/\s+/g, ' ')).toContain(named);
    expect(readFileSync(path.join(PROJECT_ROOT, 'examples', 'gitlab-ci', '.gitlab-ci.yml'), 'utf8').replace(/\n\s*# /g, ' ')).toContain(named);
  });

  it.each(FILES)('%s: every container has memory and ephemeral-storage requests within its limits', (file) => {
    for (const c of containersOf(file)) {
      const { requests, limits } = c.resources;
      for (const k of ['memory', 'ephemeral-storage']) expect(parseQuantity(requests[k]), `${c.name} ${k}`).toBeLessThanOrEqual(parseQuantity(limits[k]));
    }
  });

  it('the Indexed Job has one completion per image in its list', () => {
    const list = docs['indexed-job.yaml'].find((d) => d.kind === 'ConfigMap')!.data.images.trim().split('\n');
    expect(jobOf('indexed-job.yaml').spec.completions).toBe(list.length);
  });
});

describe('the GitLab CI example', () => {
  const ci = parse(readFileSync(path.join(PROJECT_ROOT, 'examples', 'gitlab-ci', '.gitlab-ci.yml'), 'utf8'));

  it('chains prepare, kaniko and convert through artefacts, with the images the Kubernetes examples name', () => {
    expect(ci.variables.C2V_IMAGE).toBe(PUBLISHED_IMAGES.c2v);
    const jobs = Object.entries(ci).filter(([, j]: [string, any]) => j && typeof j === 'object' && 'stage' in j) as [string, any][];
    expect(jobs.map(([, j]) => j.stage)).toEqual(ci.stages);
    for (let i = 1; i < jobs.length; i++) {
      expect(jobs[i][1].needs).toEqual([jobs[i - 1][0]]);
      const wanted = jobs[i - 1][1].artifacts.paths[0].replace(/\/$/, '');
      expect(jobs[i][1].script.join('\n')).toContain(wanted);
    }
    expect(jobs[1][1].image.name).toBe(`${PUBLISHED_IMAGES.kaniko}-debug`);
  });
});
