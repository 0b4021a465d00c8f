import { describe, expect, it } from 'vitest';
import { accelChoice, SerialWatch } from '../../src/adapters/qemu.js';
import { BOOTED } from '../../src/commands/verify.js';

describe('serial console watching', () => {
  it('matches a marker line split over pieces only once its end has arrived', () => {
    const w = new SerialWatch(/C2V-EXAMPLE-READY/);
    expect(w.push('[  OK  ] Started x.\r\nC2V-EXAMPLE-READY ker')).toEqual({ partial: 'C2V-EXAMPLE-READY ker' });
    expect(w.push('nel=6.1.0 failed=0\r\nDebian GNU/Linux 12')).toEqual({ line: 'C2V-EXAMPLE-READY kernel=6.1.0 failed=0' });
  });

  it('reports a prompt without a newline as a partial match, and drops CRs and terminal escapes', () => {
    const w = new SerialWatch(BOOTED);
    expect(w.push('\x1b[0;32m  OK  \x1b[0m] Reached target basic.target\r\n')).toEqual({});
    expect(w.push('debian login: ')).toEqual({ partial: 'debian login: ' });
    expect(w.serial).toBe('  OK  ] Reached target basic.target\ndebian login: ');
  });

  it('hands every whole line to onLine and returns the first matching one', () => {
    const lines: string[] = [];
    const w = new SerialWatch(/READY/, (l) => lines.push(l));
    expect(w.push('a\nREADY 1\nREADY 2\nb')).toEqual({ line: 'READY 1' });
    expect(lines).toEqual(['a', 'READY 1', 'READY 2']);
  });
});

describe('accelerator choice (C2V_QEMU_ACCEL)', () => {
  it('is auto unless set, takes kvm and tcg, and refuses anything else with a usage error', () => {
    expect(accelChoice(undefined)).toBe('auto');
    expect(accelChoice('')).toBe('auto');
    expect(accelChoice('auto')).toBe('auto');
    expect(accelChoice('kvm')).toBe('kvm');
    expect(accelChoice('tcg')).toBe('tcg');
    expect(() => accelChoice('hvf')).toThrow(/C2V_QEMU_ACCEL must be auto, kvm or tcg \(got "hvf"\)/);
  });
});
