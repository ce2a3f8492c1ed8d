// A guest that powers itself off: a 512-byte boot sector, made here as bytes (no binary in the repository), that
// waits a while (BIOS int 15h, AH=86h: wait CX:DX microseconds) and then writes SLP_EN (0x2000) to the PIIX4 PM1a
// control register (PM base + 4: 0xB004 where SeaBIOS puts the base at 0xB000) of QEMU's `pc` machine: an ACPI
// power-off (S5), exactly what a guest OS does when it shuts down. libvirt then reports `Stopped Shutdown`.
import { execFileSync } from 'node:child_process';
import { chownSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { tinyGuestXml } from './libvirtd';

/** The boot sector: wait `waitMs` (at most ~71 minutes), power off, halt. */
export function poweroffBootSector(waitMs: number): Buffer {
  const us = Math.max(0, Math.min(0xffffffff, Math.round(waitMs * 1000)));
  const code = [
    0xfb, //                                     sti (the BIOS wait needs the timer interrupt)
    0xb4, 0x86, //                               mov ah, 0x86
    0xb9, (us >>> 16) & 0xff, (us >>> 24) & 0xff, // mov cx, high word of the microseconds
    0xba, us & 0xff, (us >>> 8) & 0xff, //       mov dx, low word
    0xcd, 0x15, //                               int 0x15
    // The PM I/O base from the PIIX4 PM function's PCI config (bus 0, device 1, function 3, register 0x40): the
    // issue measured 0xB000, this machine's SeaBIOS logs 'Moving pm_base to 0x600'; reading it serves both.
    0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80, //       mov eax, 0x80000B40
    0xba, 0xf8, 0x0c, //                         mov dx, 0xCF8
    0x66, 0xef, //                               out dx, eax
    0xba, 0xfc, 0x0c, //                         mov dx, 0xCFC
    0x66, 0xed, //                               in eax, dx
    0x25, 0xc0, 0xff, //                         and ax, 0xFFC0 (the base)
    0x05, 0x04, 0x00, //                         add ax, 4 (PM1a_CNT)
    0x89, 0xc2, //                               mov dx, ax
    0xb8, 0x00, 0x20, //                         mov ax, 0x2000 (SLP_EN, SLP_TYP 0 = S5 on PIIX4)
    0xef, //                                     out dx, ax
    0xf4, //                                     hlt
    0xeb, 0xfd, //                               jmp back to hlt
  ];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/**
 * A qcow2 disk image in `dir` whose boot sector powers the guest off after `waitMs` (qcow2: internal snapshots
 * work on it). `owner`: uid/gid the daemon runs as, when the tests run as root.
 */
export function poweroffImage(qemuImg: string, dir: string, name: string, waitMs: number, owner?: { uid: number; gid: number }): string {
  const raw = join(dir, `${name}.raw`);
  const image = join(dir, `${name}.qcow2`);
  const disk = Buffer.alloc(1024 * 1024);
  poweroffBootSector(waitMs).copy(disk);
  writeFileSync(raw, disk);
  execFileSync(qemuImg, ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, image]);
  rmSync(raw, { force: true });
  if (owner) chownSync(image, owner.uid, owner.gid);
  return image;
}

/** A tiny TCG guest that boots from its disk (the boot sector above). */
export function poweroffGuestXml(name: string, disk: string): string {
  return tinyGuestXml(name, disk, { bootFromDisk: true });
}
