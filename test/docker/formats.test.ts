import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDisk, checkOutput, checkOvfFolder, sha256File } from '../helpers/check-output.js';
import { vmSkeleton } from '../helpers/crafted-tar.js';
import { requireDockerEngine } from '../helpers/env.js';
import { importImage, removeImages } from '../helpers/images.js';
import { runC2vWithPid } from '../helpers/leftovers.js';
import { parseVmdk } from '../helpers/vmdk-reader.js';
import { makeSigningKeys, type TestSigningKeys } from '../helpers/openssl-signature.js';
import { runC2v } from '../helpers/run-cli.js';

/**
 * Every --format from one image with the same options: the OVA, the OVF folder, the bare VMDK and the raw disk
 * hold the same disk, and each passes the checks that apply to it.
 */
const IMAGE = 'c2v-test/formats:1';

describe('output formats', () => {
  let dir: string;
  let keys: TestSigningKeys;
  const out = (name: string) => path.join(dir, name);
  const convert = async (format: string, output: string, extra: string[] = []) => {
    const r = await runC2vWithPid(['convert', IMAGE, '--no-pull', '--name', 'fmt', '--format', format, '-o', output, ...extra]);
    expect(r.exitCode, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-formats-'));
    await importImage(IMAGE, vmSkeleton({ name: 'formats' }));
    keys = makeSigningKeys(path.join(dir, 'keys'));
    await convert('ova', out('fmt.ova'));
    // Signed by a CA-issued certificate, with its intermediate; the OVA below by a self-signed one.
    await convert('ovf', out('fmt-ovf'), ['--sign', keys.leafKey, '--cert', keys.chain]);
    await convert('vmdk', out('fmt.vmdk'));
    await convert('raw', out('fmt.raw'));
    await convert('qcow2', out('fmt.qcow2'));
    writeFileSync(path.join(dir, 'eula.txt'), 'You may use this appliance <as is> & "without warranty".\n');
    await convert('ova', out('fmt-vmx11.ova'), ['--hw-version', '11', '--sign', keys.selfKey, '--cert', keys.selfCert, '--serial', '--cpus', '2', '--product', 'Formats & Co', '--product-version', '2.0', '--eula', path.join(dir, 'eula.txt')]);
  }, 300_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(IMAGE);
  });

  it('leaves only the outputs in the folder, no workspace', () => {
    expect(readdirSync(dir).sort()).toEqual(['eula.txt', 'fmt-ovf', 'fmt-vmx11.ova', 'fmt.ova', 'fmt.qcow2', 'fmt.raw', 'fmt.vmdk', 'keys']);
  });

  it('--hw-version 11: a SHA1 manifest (ESXi 6.0 clients reject SHA256) that checks out, signed with SHA1 too, and a vmx-11 OVF', async () => {
    // checkOutput verifies the .cert with openssl, and each member against the manifest.
    const ova = await checkOutput(out('fmt-vmx11.ova'));
    try {
      expect(ova.members).toEqual(['fmt.ovf', 'fmt.mf', 'fmt.cert', 'fmt-disk1.vmdk']);
      expect(readFileSync(path.join(ova.dir, 'fmt.mf'), 'utf8')).toMatch(/^SHA1\(fmt\.ovf\)= [0-9a-f]{40}\nSHA1\(fmt-disk1\.vmdk\)= [0-9a-f]{40}\n$/);
      expect(readFileSync(path.join(ova.dir, 'fmt.cert'), 'utf8')).toMatch(/^SHA1\(fmt\.mf\)= [0-9a-f]{512}\n-----BEGIN CERTIFICATE-----\n/);
      expect(ova.ovf).toContain('<vssd:VirtualSystemType>vmx-11</vssd:VirtualSystemType>');
      // The product and license the deploy wizard shows, the serial port, two vCPUs on one socket.
      expect(ova.ovf).toContain('<Product>Formats &amp; Co</Product>');
      expect(ova.ovf).toContain('<Version>2.0</Version>');
      expect(ova.ovf).toContain('<License>You may use this appliance &lt;as is&gt; &amp; &quot;without warranty&quot;.\n</License>');
      expect(ova.ovf).toContain('<rasd:ResourceSubType>vmware.serialport.device</rasd:ResourceSubType>');
      expect(ova.ovf).toContain('<vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket>');
    } finally {
      ova.cleanup();
    }
  }, 120_000);

  it('--format ovf --sign: a folder with the .ovf, .mf, .cert and .vmdk that pass the OVA checks and openssl', async () => {
    expect(readdirSync(out('fmt-ovf')).sort()).toEqual(['fmt-disk1.vmdk', 'fmt.cert', 'fmt.mf', 'fmt.ovf']);
    (await checkOvfFolder(out('fmt-ovf'))).cleanup();
    expect(readFileSync(path.join(out('fmt-ovf'), 'fmt.cert'), 'utf8').match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
  }, 120_000);

  it('--sign is refused for --format raw and vmdk, and without --cert, before anything is written', async () => {
    for (const extra of [
      ['--format', 'raw', '--sign', keys.leafKey, '--cert', keys.chain],
      ['--format', 'vmdk', '--sign', keys.leafKey, '--cert', keys.chain],
      ['--sign', keys.leafKey],
    ]) {
      const r = await runC2v(['convert', IMAGE, '--no-pull', '--name', 'refused', '-o', out('refused.out'), ...extra]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--sign (signs an OVF package's manifest, and --format (raw|vmdk) has none|needs --cert)/);
    }
    expect(readdirSync(dir).filter((n) => n.startsWith('refused'))).toEqual([]);
  }, 60_000);

  it('states as populatedSize the data the VMDK holds (its grains), in the OVF folder and the OVA alike', async () => {
    const vmdk = parseVmdk(readFileSync(path.join(out('fmt-ovf'), 'fmt-disk1.vmdk')));
    const grains = vmdk.events.filter((e) => e.kind === 'grain').length;
    expect(grains).toBeGreaterThan(0);
    const populated = (xml: string) => Number(/ovf:populatedSize="(\d+)"/.exec(xml)?.[1]);
    expect(populated(readFileSync(path.join(out('fmt-ovf'), 'fmt.ovf'), 'utf8'))).toBe(grains * 65536);
    const ova = await checkOutput(out('fmt.ova'));
    try {
      expect(populated(ova.ovf)).toBe(grains * 65536);
    } finally {
      ova.cleanup();
    }
  }, 120_000);

  it('--format raw: a GPT disk with a clean root filesystem and ESP', () => {
    checkDisk(out('fmt.raw'));
  }, 60_000);

  it('--format qcow2: a compressed qcow2 v3 of the same disk as --format raw, that qemu-img checks clean', () => {
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output', 'json', out('fmt.qcow2')], { encoding: 'utf8' }));
    expect(info).toMatchObject({ format: 'qcow2', 'cluster-size': 65536, 'virtual-size': statSync(out('fmt.raw')).size, 'format-specific': { data: { compat: '1.1' } } });
    const check = JSON.parse(execFileSync('qemu-img', ['check', '--output', 'json', out('fmt.qcow2')], { encoding: 'utf8' }));
    expect(check).toMatchObject({ 'check-errors': 0 });
    expect(check.leaks ?? 0).toBe(0);
    expect(check.corruptions ?? 0).toBe(0);
    // Every allocated cluster is a compressed one.
    expect(check['compressed-clusters']).toBe(check['allocated-clusters']);
    expect(execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', out('fmt.raw'), out('fmt.qcow2')], { encoding: 'utf8' })).toMatch(/Images are identical/);
    expect(statSync(out('fmt.qcow2')).size).toBeLessThan(statSync(out('fmt.raw')).size / 2);
  }, 120_000);

  it('--sign is refused for --format qcow2 too: there is no manifest to sign', async () => {
    const r = await runC2v(['convert', IMAGE, '--no-pull', '--name', 'refused', '--format', 'qcow2', '-o', out('refused.qcow2'), '--sign', keys.leafKey, '--cert', keys.chain]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--format qcow2 has none/);
  }, 60_000);

  it('--format vmdk: the same disk as --format raw, and the same bytes as the VMDK inside the OVA and the folder', async () => {
    const cmp = execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', out('fmt.raw'), out('fmt.vmdk')], { encoding: 'utf8' });
    expect(cmp).toMatch(/Images are identical/);
    const vmdk = await sha256File(out('fmt.vmdk'));
    expect(await sha256File(path.join(out('fmt-ovf'), 'fmt-disk1.vmdk'))).toBe(vmdk);
    const ova = await checkOutput(out('fmt.ova'));
    try {
      expect(await sha256File(path.join(ova.dir, 'fmt-disk1.vmdk'))).toBe(vmdk);
      // The OVA's OVF is padded with trailing whitespace to the room reserved for it; the XML is the same.
      expect(ova.ovf.trimEnd()).toBe(readFileSync(path.join(out('fmt-ovf'), 'fmt.ovf'), 'utf8').trimEnd());
    } finally {
      ova.cleanup();
    }
    expect(statSync(out('fmt.vmdk')).size).toBeLessThan(statSync(out('fmt.raw')).size);
  }, 120_000);
});
