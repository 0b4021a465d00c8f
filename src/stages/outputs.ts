/**
 * The last stages: the finished raw disk becomes what --format asks for. A raw disk is published as it is, a
 * qcow2 is compressed from it; the others get a streamOptimized VMDK, and the OVF folder and OVA the descriptor
 * and manifest around it. Every
 * artefact is made in the workspace and appears under its final name only when complete.
 */
import { mkdir, rm } from 'node:fs/promises';
import { C2vError } from '../errors.js';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { formatSize } from '../config/size.js';
import { formatManifest } from '../formats/manifest.js';
import { signManifest, type OvaSigner } from '../formats/ova-signature.js';
import { GRAIN_BYTES } from '../formats/vmdk.js';
import { buildOvf } from '../plan/ovf.js';
import type { DiskPlan, OutputPlan } from '../plan/conversion.js';
import type { StageRunner } from '../progress.js';
import type { Workspace } from '../adapters/workspace.js';
import { streamVmdk, writeVmdk, type VmdkStreamResult } from './vmdk.js';
import { StreamingOva, writeOvfFolder } from './package-ova.js';
import { writeQcow2 } from './qcow2.js';

export interface OutputRequest {
  output: OutputPlan;
  disk: DiskPlan;
  /** The raw disk in the workspace; consumed. */
  diskPath: string;
  ws: Workspace;
  stages: StageRunner;
  /** Signs the manifest when the plan names a .cert member. */
  signer?: OvaSigner;
}

/** Bytes of what was published. */
export async function writeOutput(req: OutputRequest): Promise<number> {
  switch (req.output.format) {
    case 'raw':
      await req.ws.publish(req.diskPath, req.output.path);
      return req.disk.layout.diskBytes;
    case 'vmdk':
      return writeBareVmdk(req);
    case 'ovf':
      return writeOvf(req);
    case 'ova':
      return writeOva(req);
    case 'qcow2':
      return writeQcow2Output(req);
    case 'netboot':
      throw new C2vError('internal', 'a network boot folder is not made from a disk (stages/netboot.ts makes it)');
  }
}

/** For KVM and Proxmox: the same disk as a compressed qcow2, its clusters deflated by the VMDK's worker pool. */
async function writeQcow2Output(req: OutputRequest): Promise<number> {
  const qcow2Path = req.ws.file(`${req.disk.ovf.name}.qcow2`);
  const written = await req.stages.run(
    'qcow2',
    'Writing the compressed qcow2',
    (_update, progress) => writeQcow2(req.diskPath, qcow2Path, { capacityBytes: req.disk.layout.diskBytes, compressLevel: req.disk.vmdk.compressLevel, onProgress: progress }),
    (q) => `${formatSize(q.bytes)} from ${formatSize(q.readBytes)} of data read, ${q.clusters} compressed clusters (${q.engine}, data map: ${q.mapMethod})`,
  );
  await rm(req.diskPath, { force: true });
  await req.ws.publish(qcow2Path, req.output.path);
  return written.bytes;
}

/**
 * populatedSize is the data the disk holds, as vSphere reckons it for thin provisioning: the grains the VMDK
 * stores (every non-zero 64 KiB), not the files' bytes, which leave out metadata and partial blocks.
 */
function ovfText(req: OutputRequest, fileBytes: number, grains: number): string {
  const { disk } = req;
  const capacityBytes = disk.layout.diskBytes;
  return buildOvf({
    ...disk.ovf,
    disk: { fileName: req.output.diskName, fileBytes, capacityBytes, populatedBytes: Math.min(capacityBytes, grains * GRAIN_BYTES) },
  });
}

function vmdkSummary(v: VmdkStreamResult & { bytes: number }): string {
  return `${formatSize(v.bytes)} from ${formatSize(v.readBytes)} of data read, ${v.grains} grains (${v.engine}, data map: ${v.mapMethod})`;
}

async function vmdkFile(req: OutputRequest, vmdkPath: string) {
  const vmdk = await req.stages.run(
    'vmdk',
    'Writing the streamOptimized VMDK',
    (_update, progress) => writeVmdk(req.diskPath, vmdkPath, { ...req.disk.vmdk, digest: req.output.manifestDigest, onProgress: progress }),
    vmdkSummary,
  );
  await rm(req.diskPath, { force: true });
  return vmdk;
}

async function writeBareVmdk(req: OutputRequest): Promise<number> {
  const vmdkPath = req.ws.file(req.output.diskName);
  const vmdk = await vmdkFile(req, vmdkPath);
  await req.ws.publish(vmdkPath, req.output.path);
  return vmdk.bytes;
}

/** The plan's .cert member with the key that signs it; a plan naming one without a key is a fault of ours. */
function signingOf(req: OutputRequest): { certName: string; signer: OvaSigner } | undefined {
  const certName = req.output.certName;
  if (!certName) return undefined;
  if (!req.signer) throw new C2vError('internal', `the plan names ${certName} but no signing key was read`);
  return { certName, signer: req.signer };
}

/** The OVF folder gets its VMDK written in place; nothing is copied afterwards. */
async function writeOvf(req: OutputRequest): Promise<number> {
  const { ovfName, mfName, diskName } = req.output;
  const folder = req.ws.file('ovf');
  await mkdir(folder);
  const vmdkPath = path.join(folder, diskName);
  const vmdk = await vmdkFile(req, vmdkPath);
  const ovf = Buffer.from(ovfText(req, vmdk.bytes, vmdk.grains), 'utf8');
  const mf = Buffer.from(
    formatManifest(
      [
        { name: ovfName, hex: createHash(req.output.manifestDigest).update(ovf).digest('hex') },
        { name: diskName, hex: vmdk.digest },
      ],
      req.output.manifestDigest,
    ),
    'utf8',
  );
  const signing = signingOf(req);
  const cert = signing && signManifest(signing.signer, mfName, req.output.manifestDigest, mf);
  const members = [
    { name: ovfName, size: ovf.length, source: ovf },
    { name: mfName, size: mf.length, source: mf },
    ...(signing && cert ? [{ name: signing.certName, size: cert.length, source: cert }] : []),
    { name: diskName, size: vmdk.bytes, source: vmdkPath },
  ];
  await req.stages.run('package', 'Writing the OVF folder', () => writeOvfFolder(folder, members));
  await req.ws.publish(folder, req.output.path);
  return members.reduce((sum, m) => sum + m.size, 0);
}

/**
 * The VMDK streams straight into the archive, hashed as it goes; the OVF and .mf, which come first, are filled
 * into room reserved for them once the VMDK's size and hash are known.
 */
async function writeOva(req: OutputRequest): Promise<number> {
  const { ovfName, mfName, diskName } = req.output;
  const ovaPath = req.ws.file(`${req.disk.ovf.name}.ova`);
  // Until the disk is written its grains are unknown: a full disk's count sizes the room the OVF gets.
  let grains = Math.ceil(req.disk.layout.diskBytes / GRAIN_BYTES);
  const ova = await StreamingOva.create(ovaPath, {
    ovfName,
    mfName,
    diskName,
    digest: req.output.manifestDigest,
    ovf: (bytes) => ovfText(req, bytes, grains),
    signature: signingOf(req),
  });
  let bytes: number;
  try {
    await req.stages.run(
      'vmdk',
      'Writing the streamOptimized VMDK into the OVA',
      async (_update, progress) => {
        const written = await ova.writeDisk((sink) => streamVmdk(req.diskPath, { ...req.disk.vmdk, onProgress: progress }, sink));
        grains = written.grains;
        return written;
      },
      vmdkSummary,
    );
    await rm(req.diskPath, { force: true });
    bytes = (await req.stages.run('package', 'Writing the OVF and manifest into the OVA', () => ova.finish())).bytes;
  } catch (e) {
    await ova.abort();
    throw e;
  }
  await req.ws.publish(ovaPath, req.output.path);
  return bytes;
}
