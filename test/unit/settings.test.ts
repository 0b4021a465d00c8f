import { describe, expect, it } from 'vitest';
import type { Arguments } from 'yargs';
import { CONVERT_SETTINGS, camelCase, parseCommand, validatorOf } from '../../src/config/settings.js';
import { convertSchema, formatIssues } from '../../src/config/schema.js';
import { CONVERT_COMMAND, CONVERT_DESCRIPTION, convertBuilder, convertInput } from '../../src/cli/convert-flags.js';
import { flagOption } from '../../src/cli/flags.js';
import { createParser } from '../../src/cli/global.js';

/** Runs the real `convert` flag parsing (yargs, the derived options) and returns the handler's argv. */
async function parseArgv(args: string[]): Promise<Arguments> {
  let seen: Arguments | undefined;
  await createParser(['convert', ...args])
    .exitProcess(false)
    .command(CONVERT_COMMAND, CONVERT_DESCRIPTION, convertBuilder, (argv) => {
      seen = argv;
    })
    .parseAsync();
  if (!seen) throw new Error('the convert handler did not run');
  return seen;
}

async function settingsFrom(args: string[]) {
  return convertSchema.safeParse(convertInput(await parseArgv(args)));
}

const HW_MESSAGE =
  '--hw-version must be an ESXi hardware version: 10 (ESXi 5.5), 11 (ESXi 6.0), 13 (ESXi 6.5), 14 (ESXi 6.7), 15 (ESXi 6.7 U2), 17 (ESXi 7.0), 18 (ESXi 7.0 U1), 19 (ESXi 7.0 U2), 20 (ESXi 8.0.0.1), 21 (ESXi 8.0 U2), 22 (ESXi 9.0) (12 and 16 are Workstation versions ESXi rejects)';

describe('the settings table', () => {
  it('names schema keys in camelCase', () => {
    expect(camelCase('root-password-hash')).toBe('rootPasswordHash');
    expect(Object.keys(convertSchema.shape)).toEqual(
      Object.entries(CONVERT_SETTINGS)
        .filter(([, s]) => !('cliOnly' in s))
        .map(([f]) => camelCase(f)),
    );
    expect(convertSchema.shape).not.toHaveProperty('timings');
  });

  it('declares defaults that its own validators accept unchanged', () => {
    for (const [flag, s] of Object.entries(CONVERT_SETTINGS)) {
      if (!('default' in s)) continue;
      expect(validatorOf(flag, s).parse(s.default), flag).toEqual(s.default);
    }
  });

  it('keeps today\'s defaults', () => {
    expect(convertSchema.parse({ input: 'x' })).toEqual({
      input: 'x',
      format: 'ova',
      boot: 'hybrid',
      secureBoot: false,
      guestAgent: false,
      cpus: 1,
      memory: 1024,
      diskSize: 'auto',
      network: 'VM Network',
      scsi: 'pvscsi',
      nic: 'vmxnet3',
      serial: false,
      hwVersion: 14,
      manifestDigest: 'auto',
      compressLevel: 5,
      pull: true,
      builder: 'docker',
      platform: 'linux/amd64',
      init: 'auto',
      appService: true,
      ssh: false,
      cloudInit: false,
      keepWorkdir: false,
      plan: false,
    });
  });

  it('splits --cmd as JSON or words', () => {
    expect(parseCommand('["app","--port","80"]')).toEqual(['app', '--port', '80']);
    expect(parseCommand(' app  --port 80 ')).toEqual(['app', '--port', '80']);
    expect(parseCommand('[1]')).toBeUndefined();
    expect(parseCommand('["a"')).toBeUndefined();
  });

  it('takes --insecure-registry repeated or comma-separated, and refuses what is not host[:port]', () => {
    expect(convertSchema.parse({ input: 'x', insecureRegistry: ['a.lan:5000', 'b.lan,c.lan:80'] }).insecureRegistry).toEqual(['a.lan:5000', 'b.lan', 'c.lan:80']);
    expect(convertSchema.parse({ input: 'x', insecureRegistry: 'a.lan' }).insecureRegistry).toEqual(['a.lan']);
    expect(convertSchema.safeParse({ input: 'x', insecureRegistry: 'http://a.lan' }).success).toBe(false);
    expect(convertSchema.safeParse({ input: 'x', platform: 'amd64' }).success).toBe(false);
  });
});

describe('convert flags -> settings', () => {
  it('leaves absent flags to the schema defaults', async () => {
    const argv = await parseArgv(['myapp:1.4']);
    expect(convertInput(argv)).toEqual({ input: 'myapp:1.4' });
  });

  it('maps every kind of flag to its camelCase key', async () => {
    const r = await settingsFrom([
      'myapp:1.4', '-o', 'out/app.ova', '--disk-size', '2G', '--hw-version', '19', '--compress-level', '9', '--no-pull',
      '--no-app-service', '--keep-workdir', '--plan', '--timings', '--cmd', 'app --port 80', '--ssh-key', 'id.pub',
      '--root-password-hash', '$6$salt$hash', '--init', 'openrc', '--network', 'Lab Net', '--cpus', '2',
    ]);
    expect(r.success).toBe(true);
    expect(r.data).toMatchObject({
      input: 'myapp:1.4', output: 'out/app.ova', diskSize: 2 * 1024 ** 3, hwVersion: 19, compressLevel: 9, pull: false,
      appService: false, keepWorkdir: true, plan: true, cmd: ['app', '--port', '80'], sshKey: 'id.pub',
      rootPasswordHash: '$6$salt$hash', init: 'openrc', network: 'Lab Net', cpus: 2,
    });
    expect(r.data).not.toHaveProperty('timings');
  });

  it.each([
    [['--cpus', '0'], '--cpus must be at least 1'],
    [['--format', 'zip'], '--format must be one of: ova, ovf, vmdk, raw, qcow2, netboot'],
    [['--disk-size', '12Q'], 'diskSize: "12Q" is not a size: use a number with a unit, like 4G or 2048M, or "auto"'],
    [['--init', 'runit'], '--init must be one of: auto, systemd, openrc'],
    [['--hw-version', '9'], HW_MESSAGE],
    [['--hw-version', '12'], HW_MESSAGE],
    [['--hw-version', '16'], HW_MESSAGE],
    [['--hw-version', '23'], HW_MESSAGE],
    [['--manifest-digest', 'md5'], '--manifest-digest must be one of: auto, sha1, sha256, sha512'],
  ])('%j gives the same message as through the schema', async (args, message) => {
    const viaFlags = await settingsFrom(['x', ...args]);
    expect(formatIssues(viaFlags.error!)).toBe(message);
    const [flag, value] = args;
    const direct = convertSchema.safeParse({ input: 'x', [camelCase(flag.slice(2))]: value });
    expect(formatIssues(direct.error!)).toBe(message);
  });

  it('reports every bad flag at once', async () => {
    const r = await settingsFrom(['x', '--boot', 'floppy', '--format', 'zip', '--cpus', '0']);
    expect(formatIssues(r.error!).split('; ').sort()).toEqual(
      ['--boot must be one of: hybrid, bios, efi', '--cpus must be at least 1', '--format must be one of: ova, ovf, vmdk, raw, qcow2, netboot'],
    );
  });

  it('gives inspect the same --init as convert', () => {
    expect(flagOption(CONVERT_SETTINGS.init)).toEqual({ type: 'string', describe: 'Init system when c2v adds one: auto | systemd | openrc', defaultDescription: 'auto' });
    expect(convertSchema.shape.init.parse(undefined)).toBe('auto');
    expect(formatIssues(convertSchema.shape.init.safeParse('runit').error!)).toBe('--init must be one of: auto, systemd, openrc');
  });
});
