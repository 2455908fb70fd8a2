//! The guest as gdbstub's target: registers, memory and breakpoints of the stopped vCPU, and
//! what the next run should do.

use std::collections::HashMap;
use std::time::Instant;

use gdbstub::common::Signal;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::section_offsets::{Offsets, SectionOffsets, SectionOffsetsOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use kvm_bindings::{kvm_regs, kvm_xsave};
use kvm_ioctls::SyncReg;

use super::arch::{GuestArch, GuestRegs};
use crate::layout::is_guest_page;
use crate::machine::INT3;
use crate::output::Output;
use crate::vcpu::kvm_error;
use crate::vcpu::{Interrupter, Stop, Vm};
use crate::KvmError;

/// How gdb asked the guest to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    Continue,
    Step,
}

/// What the guest did that gdb sees before the guest truly ends: a fatal exception or a
/// panic stops first, so that its state can be looked at.
pub enum Held {
    /// A CPU exception the guest cannot go on from unless gdb changes its state; resuming it
    /// with its signal ends the guest with this stop.
    Fatal { stop: Stop, signal: Signal },
    /// The guest panicked and exited with this code; any resume ends it.
    Panicked(i32),
}

pub struct Debuggee<'a> {
    pub vm: &'a mut Vm,
    pub output: &'a mut dyn Output,
    pub started: Instant,
    pub interrupter: Interrupter,
    /// Where the ELF's first PT_LOAD segment was loaded.
    first_segment: u64,
    /// Inserted software breakpoints: the byte each `int3` replaced.
    breakpoints: HashMap<u64, u8>,
    pub resume: Resume,
    /// The signal gdb resumed with, if any.
    pub resume_signal: Option<Signal>,
    pub held: Option<Held>,
    /// How the guest ended, once it has.
    pub ended: Option<Stop>,
}

impl<'a> Debuggee<'a> {
    pub fn new(
        vm: &'a mut Vm,
        output: &'a mut dyn Output,
        started: Instant,
        first_segment: u64,
    ) -> Debuggee<'a> {
        let interrupter = Interrupter::new(vm);
        Debuggee {
            vm,
            output,
            started,
            interrupter,
            first_segment,
            breakpoints: HashMap::new(),
            resume: Resume::Continue,
            resume_signal: None,
            held: None,
            ended: None,
        }
    }

    pub fn is_breakpoint(&self, addr: u64) -> bool {
        self.breakpoints.contains_key(&addr)
    }

    /// Puts back every byte a breakpoint replaced (gdb went away, the guest runs on alone).
    pub fn remove_all_breakpoints(&mut self) {
        let (_, memory) = self.vm.parts();
        for (addr, byte) in self.breakpoints.drain() {
            let _ = memory.write(addr, &[byte]);
        }
    }
}

/// The x87 and SSE state through KVM_GET_XSAVE's legacy (FXSAVE) area: KVM_GET_FPU on this
/// machine's KVM reports MXCSR as 0 while the guest runs with 0x1f80.
struct Fxsave(kvm_xsave);

/// Byte offsets in the FXSAVE area (Intel SDM Vol. 1, 10.5.1).
const FCW: usize = 0;
const FSW: usize = 2;
const FTW: usize = 4;
const FOP: usize = 6;
const FIP: usize = 8;
const FDP: usize = 16;
const MXCSR: usize = 24;
const ST0: usize = 32;
const XMM0: usize = 160;

impl Fxsave {
    fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        let words = &self.0.region[offset / 4..(offset + len).div_ceil(4)];
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
        bytes[offset % 4..offset % 4 + len].to_vec()
    }

    fn u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.bytes(offset, 2).try_into().unwrap())
    }

    fn u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes(offset, 4).try_into().unwrap())
    }

    fn set(&mut self, offset: usize, value: &[u8]) {
        for (index, byte) in value.iter().enumerate() {
            let at = offset + index;
            let word = &mut self.0.region[at / 4];
            let shift = (at % 4) * 8;
            *word = (*word & !(0xff << shift)) | u32::from(*byte) << shift;
        }
    }
}

/// The x87 tag word as gdb shows it (two bits a register, 3 for empty) from FXSAVE's abridged
/// one (a bit a register, set when in use).
fn full_tag_word(abridged: u8) -> u32 {
    (0..8)
        .filter(|register| abridged & (1 << register) == 0)
        .fold(0, |tags, register| tags | 3 << (2 * register))
}

fn abridged_tag_word(full: u32) -> u8 {
    (0..8)
        .filter(|register| (full >> (2 * register)) & 3 != 3)
        .fold(0, |tags, register| tags | 1 << register)
}

/// gdb's order of the general registers: rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15.
fn general(regs: &mut kvm_regs) -> [&mut u64; 16] {
    [
        &mut regs.rax,
        &mut regs.rbx,
        &mut regs.rcx,
        &mut regs.rdx,
        &mut regs.rsi,
        &mut regs.rdi,
        &mut regs.rbp,
        &mut regs.rsp,
        &mut regs.r8,
        &mut regs.r9,
        &mut regs.r10,
        &mut regs.r11,
        &mut regs.r12,
        &mut regs.r13,
        &mut regs.r14,
        &mut regs.r15,
    ]
}

/// A failed vCPU ioctl ends the session: gdb is told, and the runner exits with the error.
fn kvm_failed(ioctl: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> TargetError<KvmError> {
    move |err| TargetError::Fatal(kvm_error(ioctl)(err))
}

impl Target for Debuggee<'_> {
    type Arch = GuestArch;
    type Error = KvmError;

    fn base_ops(&mut self) -> BaseOps<'_, GuestArch, KvmError> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_section_offsets(&mut self) -> Option<SectionOffsetsOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for Debuggee<'_> {
    fn read_registers(&mut self, out: &mut GuestRegs) -> TargetResult<(), Self> {
        let (vcpu, _) = self.vm.parts();
        // The general registers are in kvm_run's sync area after every exit (and hold the
        // initial ones before the first run).
        let mut regs = vcpu.sync_regs().regs;
        for (slot, value) in out.core.regs.iter_mut().zip(general(&mut regs)) {
            *slot = *value;
        }
        out.core.rip = regs.rip;
        out.core.eflags = regs.rflags as u32;
        let sregs = vcpu.get_sregs().map_err(kvm_failed("KVM_GET_SREGS"))?;
        let segments = &mut out.core.segments;
        for (slot, segment) in [
            (&mut segments.cs, sregs.cs),
            (&mut segments.ss, sregs.ss),
            (&mut segments.ds, sregs.ds),
            (&mut segments.es, sregs.es),
            (&mut segments.fs, sregs.fs),
            (&mut segments.gs, sregs.gs),
        ] {
            *slot = segment.selector.into();
        }
        out.fs_base = sregs.fs.base;
        out.gs_base = sregs.gs.base;
        let fx = Fxsave(vcpu.get_xsave().map_err(kvm_failed("KVM_GET_XSAVE"))?);
        for (index, slot) in out.core.st.iter_mut().enumerate() {
            slot.copy_from_slice(&fx.bytes(ST0 + index * 16, 10));
        }
        let x87 = &mut out.core.fpu;
        x87.fctrl = fx.u16(FCW).into();
        x87.fstat = fx.u16(FSW).into();
        x87.ftag = full_tag_word(fx.bytes(FTW, 1)[0]);
        x87.fop = fx.u16(FOP).into();
        x87.fioff = fx.u32(FIP);
        x87.fooff = fx.u32(FDP);
        for (index, slot) in out.core.xmm.iter_mut().enumerate() {
            let bytes = fx.bytes(XMM0 + index * 16, 16);
            *slot = u128::from_le_bytes(bytes.try_into().unwrap());
        }
        out.core.mxcsr = fx.u32(MXCSR);
        Ok(())
    }

    fn write_registers(&mut self, new: &GuestRegs) -> TargetResult<(), Self> {
        let (vcpu, _) = self.vm.parts();
        let regs = &mut vcpu.sync_regs_mut().regs;
        for (slot, value) in general(regs).into_iter().zip(new.core.regs) {
            *slot = value;
        }
        regs.rip = new.core.rip;
        regs.rflags = new.core.eflags.into();
        vcpu.set_sync_dirty_reg(SyncReg::Register);
        // Selectors stay: the guest has only its one code and one data segment.
        let mut sregs = vcpu.get_sregs().map_err(kvm_failed("KVM_GET_SREGS"))?;
        if (sregs.fs.base, sregs.gs.base) != (new.fs_base, new.gs_base) {
            sregs.fs.base = new.fs_base;
            sregs.gs.base = new.gs_base;
            vcpu.set_sregs(&sregs)
                .map_err(kvm_failed("KVM_SET_SREGS"))?;
        }
        let mut fx = Fxsave(vcpu.get_xsave().map_err(kvm_failed("KVM_GET_XSAVE"))?);
        for (index, value) in new.core.st.iter().enumerate() {
            fx.set(ST0 + index * 16, value);
        }
        let x87 = &new.core.fpu;
        fx.set(FCW, &(x87.fctrl as u16).to_le_bytes());
        fx.set(FSW, &(x87.fstat as u16).to_le_bytes());
        fx.set(FTW, &[abridged_tag_word(x87.ftag)]);
        fx.set(FOP, &(x87.fop as u16).to_le_bytes());
        for (index, value) in new.core.xmm.iter().enumerate() {
            fx.set(XMM0 + index * 16, &value.to_le_bytes());
        }
        fx.set(MXCSR, &new.core.mxcsr.to_le_bytes());
        // SAFETY: the runner enables no dynamically sized XSTATE features (arch_prctl), so the
        // state KVM copies fits the 4096-byte kvm_xsave.
        unsafe { vcpu.set_xsave(&fx.0) }.map_err(kvm_failed("KVM_SET_XSAVE"))?;
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let (_, memory) = self.vm.parts();
        let mut done = 0;
        for (index, byte) in data.iter_mut().enumerate() {
            let addr = start.wrapping_add(index as u64);
            match memory.slice(addr, 1) {
                Some(&[value]) if is_guest_page(memory, addr) => *byte = value,
                _ => break,
            }
            done += 1;
        }
        if done == 0 {
            // An error reply, as for memory a process has not mapped.
            return Err(TargetError::NonFatal);
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let (_, memory) = self.vm.parts();
        let len = data.len() as u64;
        let end = start.checked_add(len).ok_or(TargetError::NonFatal)?;
        // Every page first, so that a refused write changes nothing.
        let mut page = start & !(crate::elf::PAGE - 1);
        while page < end {
            if !is_guest_page(memory, page) {
                return Err(TargetError::NonFatal);
            }
            page += crate::elf::PAGE;
        }
        memory.write(start, data).ok_or(TargetError::NonFatal)
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Debuggee<'_> {
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), KvmError> {
        self.resume = Resume::Continue;
        self.resume_signal = signal;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Debuggee<'_> {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), KvmError> {
        self.resume = Resume::Step;
        self.resume_signal = signal;
        Ok(())
    }
}

impl Breakpoints for Debuggee<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Debuggee<'_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.contains_key(&addr) {
            return Ok(true);
        }
        let (_, memory) = self.vm.parts();
        let original = match memory.slice(addr, 1) {
            Some(&[byte]) if is_guest_page(memory, addr) => byte,
            _ => return Ok(false),
        };
        memory.write(addr, &[INT3]).ok_or(TargetError::NonFatal)?;
        self.breakpoints.insert(addr, original);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(original) = self.breakpoints.remove(&addr) else {
            return Ok(false);
        };
        let (_, memory) = self.vm.parts();
        memory
            .write(addr, &[original])
            .ok_or(TargetError::NonFatal)?;
        Ok(true)
    }
}

impl SectionOffsets for Debuggee<'_> {
    /// Where the static PIE went, so that gdb relocates the ELF's symbols and lines itself.
    /// As one segment: gdb moves every later PT_LOAD with the last segment it is told of,
    /// which is right for an image loaded whole (section offsets would move .text, .data and
    /// .bss only, not .rodata).
    fn get_section_offsets(&mut self) -> Result<Offsets<u64>, KvmError> {
        Ok(Offsets::Segments {
            text_seg: self.first_segment,
            data_seg: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fxsave_fields() {
        let mut fx = Fxsave(kvm_xsave::default());
        fx.set(MXCSR, &0x1f80u32.to_le_bytes());
        fx.set(FTW, &[0x81]);
        fx.set(XMM0 + 16 + 3, &[0xab, 0xcd]);
        assert_eq!(fx.0.region[6], 0x1f80);
        assert_eq!(fx.u32(MXCSR), 0x1f80);
        assert_eq!(fx.bytes(FTW, 1), [0x81]);
        assert_eq!(fx.0.region[1], 0x81);
        assert_eq!(fx.bytes(XMM0 + 16 + 2, 3), [0, 0xab, 0xcd]);
    }

    #[test]
    fn tag_words() {
        assert_eq!(full_tag_word(0), 0xffff);
        assert_eq!(full_tag_word(0b1000_0001), 0x3ffc);
        assert_eq!(abridged_tag_word(0x3ffc), 0b1000_0001);
        assert_eq!(abridged_tag_word(0xffff), 0);
    }
}
