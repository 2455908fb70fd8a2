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
use kvm_bindings::{kvm_fpu, kvm_regs};
use kvm_ioctls::SyncReg;

use super::arch::{GuestArch, GuestRegs};
use crate::layout::is_mapped;
use crate::machine::INT3;
use crate::output::Output;
use crate::vcpu::{Interrupter, Stop, Vm};

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
    load_bias: u64,
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
        load_bias: u64,
    ) -> Debuggee<'a> {
        let interrupter = Interrupter::new(vm);
        Debuggee {
            vm,
            output,
            started,
            interrupter,
            load_bias,
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

fn kvm_failed(err: kvm_ioctls::Error) -> TargetError<String> {
    TargetError::Fatal(format!("a vCPU ioctl failed: {err}"))
}

impl Target for Debuggee<'_> {
    type Arch = GuestArch;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, GuestArch, String> {
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
        let sregs = vcpu.get_sregs().map_err(kvm_failed)?;
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
        let fpu = vcpu.get_fpu().map_err(kvm_failed)?;
        for (slot, register) in out.core.st.iter_mut().zip(fpu.fpr) {
            slot.copy_from_slice(&register[..10]);
        }
        let x87 = &mut out.core.fpu;
        x87.fctrl = fpu.fcw.into();
        x87.fstat = fpu.fsw.into();
        x87.ftag = full_tag_word(fpu.ftwx);
        x87.fop = fpu.last_opcode.into();
        x87.fioff = fpu.last_ip as u32;
        x87.fooff = fpu.last_dp as u32;
        for (slot, register) in out.core.xmm.iter_mut().zip(fpu.xmm) {
            *slot = u128::from_le_bytes(register);
        }
        out.core.mxcsr = fpu.mxcsr;
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
        let mut sregs = vcpu.get_sregs().map_err(kvm_failed)?;
        if (sregs.fs.base, sregs.gs.base) != (new.fs_base, new.gs_base) {
            sregs.fs.base = new.fs_base;
            sregs.gs.base = new.gs_base;
            vcpu.set_sregs(&sregs).map_err(kvm_failed)?;
        }
        let mut fpu: kvm_fpu = vcpu.get_fpu().map_err(kvm_failed)?;
        for (register, value) in fpu.fpr.iter_mut().zip(&new.core.st) {
            register[..10].copy_from_slice(value);
        }
        let x87 = &new.core.fpu;
        fpu.fcw = x87.fctrl as u16;
        fpu.fsw = x87.fstat as u16;
        fpu.ftwx = abridged_tag_word(x87.ftag);
        fpu.last_opcode = x87.fop as u16;
        for (register, value) in fpu.xmm.iter_mut().zip(new.core.xmm) {
            *register = value.to_le_bytes();
        }
        fpu.mxcsr = new.core.mxcsr;
        vcpu.set_fpu(&fpu).map_err(kvm_failed)?;
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let (_, memory) = self.vm.parts();
        let mut done = 0;
        for (index, byte) in data.iter_mut().enumerate() {
            let addr = start.wrapping_add(index as u64);
            match memory.slice(addr, 1) {
                Some(&[value]) if is_mapped(memory, addr) => *byte = value,
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
            if !is_mapped(memory, page) {
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
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), String> {
        self.resume = Resume::Continue;
        self.resume_signal = signal;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Debuggee<'_> {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), String> {
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
            Some(&[byte]) if is_mapped(memory, addr) => byte,
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
    /// The static PIE's load bias, so that gdb relocates the ELF's symbols and lines itself.
    fn get_section_offsets(&mut self) -> Result<Offsets<u64>, String> {
        Ok(Offsets::Sections {
            text: self.load_bias,
            data: self.load_bias,
            bss: Some(self.load_bias),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_words() {
        assert_eq!(full_tag_word(0), 0xffff);
        assert_eq!(full_tag_word(0b1000_0001), 0x3ffc);
        assert_eq!(abridged_tag_word(0x3ffc), 0b1000_0001);
        assert_eq!(abridged_tag_word(0xffff), 0);
    }
}
