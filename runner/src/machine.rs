//! The x86-64 machine state a guest starts in, as docs/abi.md's "CPU state at `entrypoint`"
//! lists it: the control registers, the segments, and the system tables the runner writes into
//! supervisor-only pages (GDT, TSS, IDT and the exception stubs its gates lead to). `layout`
//! says where the tables live; `vcpu` loads [`initial_sregs`].

use std::mem::{offset_of, size_of};

use hyperlight_rt::abi::port;
use kvm_bindings::{kvm_segment, kvm_sregs};
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::gdt::{DescriptorFlags, SegmentSelector};
use x86_64::structures::idt::ExceptionVector;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::PrivilegeLevel::{Ring0, Ring3};

use crate::layout::{
    LayoutError, FAULT_STACK_TOP, GDT_ADDR, IDT_ADDR, PML4_ADDR, STUBS_ADDR, TSS_ADDR,
};
use crate::memory::GuestMemory;

/// Paging, write protection, alignment checks, native x87 errors; SSE without x87 traps.
pub const CR0: Cr0Flags = Cr0Flags::PAGING
    .union(Cr0Flags::ALIGNMENT_MASK)
    .union(Cr0Flags::WRITE_PROTECT)
    .union(Cr0Flags::NUMERIC_ERROR)
    .union(Cr0Flags::EXTENSION_TYPE)
    .union(Cr0Flags::MONITOR_COPROCESSOR)
    .union(Cr0Flags::PROTECTED_MODE_ENABLE);
/// Long-mode paging, and SSE with its exceptions.
pub const CR4: Cr4Flags = Cr4Flags::PHYSICAL_ADDRESS_EXTENSION
    .union(Cr4Flags::OSFXSR)
    .union(Cr4Flags::OSXMMEXCPT_ENABLE);
/// Long mode, no-execute pages, `syscall`.
pub const EFER: EferFlags = EferFlags::SYSTEM_CALL_EXTENSIONS
    .union(EferFlags::LONG_MODE_ENABLE)
    .union(EferFlags::LONG_MODE_ACTIVE)
    .union(EferFlags::NO_EXECUTE_ENABLE);

/// GDT indexes: Linux's layout, whose user selectors (__USER_CS 0x33, __USER_DS 0x2b) PVM runs
/// CPL-3 code with; index 3 stays null, as there.
const KERNEL_CODE: u16 = 1;
const KERNEL_DATA: u16 = 2;
const USER_CODE32: u16 = 4;
const USER_DATA: u16 = 5;
const USER_CODE: u16 = 6;
/// The TSS descriptor takes two entries.
const TSS: u16 = 7;

/// The exception stubs' code segment.
pub const KERNEL_CS: SegmentSelector = SegmentSelector::new(KERNEL_CODE, Ring0);
/// The guest's data segment: SS, DS, ES, FS and GS.
pub const USER_DS: SegmentSelector = SegmentSelector::new(USER_DATA, Ring3);
/// The guest's code segment.
pub const USER_CS: SegmentSelector = SegmentSelector::new(USER_CODE, Ring3);
pub const TSS_SELECTOR: SegmentSelector = SegmentSelector::new(TSS, Ring0);

/// The GDT's code and data descriptors by index.
const SEGMENTS: [(u16, DescriptorFlags); 6] = [
    (0, DescriptorFlags::empty()),
    (KERNEL_CODE, DescriptorFlags::KERNEL_CODE64),
    (KERNEL_DATA, DescriptorFlags::KERNEL_DATA),
    // Unused; keeps the host's layout.
    (USER_CODE32, DescriptorFlags::USER_CODE32),
    (USER_DATA, DescriptorFlags::USER_DATA),
    (USER_CODE, DescriptorFlags::USER_CODE64),
];
pub const GDT_LIMIT: u16 = (TSS + 2) * 8 - 1;

/// System segment types (Intel SDM Vol. 3, 3.5): the GDT holds the TSS as available, and the
/// task register as the CPU leaves it after loading it, busy.
const TSS_AVAILABLE: u64 = 0x9;
const TSS_BUSY: u8 = 0xb;
/// The TSS, then its I/O permission bitmap.
const TSS_SIZE: u64 = size_of::<TaskStateSegment>() as u64;
/// Ports 0..32 (the hypercall ports) are allowed at CPL 3; everything else, and anything past
/// the limit, faults.
const IO_PERMISSION_BITMAP: [u8; 8] = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
pub const TSS_LIMIT: u32 = (TSS_SIZE as usize + IO_PERMISSION_BITMAP.len() - 1) as u32;

/// Vectors 0..32 (the exceptions) get a stub; no interrupts are ever enabled.
pub const EXCEPTION_VECTORS: u8 = 32;
pub const STUB_SIZE: u64 = 16;
const STUB_COMMON: u64 = STUBS_ADDR + EXCEPTION_VECTORS as u64 * STUB_SIZE;
const IDT_ENTRY_SIZE: u16 = 16;
pub const IDT_LIMIT: u16 = EXCEPTION_VECTORS as u16 * IDT_ENTRY_SIZE - 1;
/// A 64-bit interrupt gate (Intel SDM Vol. 3, 6.14.1): type 0xE, present; DPL in bits 5-6.
const INTERRUPT_GATE: u64 = 0x8e;
const GATE_DPL_SHIFT: u32 = 5;
/// `int3` is a software interrupt: from CPL 3 it reaches its gate only if the gate's DPL is 3
/// (else #GP). A debugger's breakpoints are `int3`s.
const USER_CALLABLE: [ExceptionVector; 1] = [ExceptionVector::Breakpoint];
/// Every exception switches to the fault stack (TSS.IST1), so even a guest whose stack pointer
/// is garbage (a stack overflow into the guard page) gets its fault reported.
const FAULT_STACK_IST: u64 = 1;

pub const PAGE_FAULT: u8 = ExceptionVector::Page as u8;
pub const DEBUG: u8 = ExceptionVector::Debug as u8;
pub const BREAKPOINT: u8 = ExceptionVector::Breakpoint as u8;
/// `int3`, a software breakpoint.
pub const INT3: u8 = 0xcc;
/// RFLAGS.TF: a #DB after each instruction (single stepping).
pub const TRAP_FLAG: u64 = 1 << 8;

/// The exceptions for which the CPU pushes an error code.
const WITH_ERROR_CODE: [ExceptionVector; 10] = [
    ExceptionVector::Double,
    ExceptionVector::InvalidTss,
    ExceptionVector::SegmentNotPresent,
    ExceptionVector::Stack,
    ExceptionVector::GeneralProtection,
    ExceptionVector::Page,
    ExceptionVector::AlignmentCheck,
    ExceptionVector::ControlProtection,
    ExceptionVector::VmmCommunication,
    ExceptionVector::Security,
];

/// The instructions the stubs are made of.
const PUSH_IMM8: u8 = 0x6a;
const JMP_REL32: u8 = 0xe9;
const OUT_IMM8_AL: u8 = 0xe6;
const JMP_REL8: u8 = 0xeb;
/// `jmp .`: the rel8 that jumps to itself.
const SELF: u8 = 0xfe;

/// The special registers at `entrypoint`; `thread_pointer` is FS's base (0 without
/// thread-local storage).
pub fn initial_sregs(thread_pointer: u64) -> kvm_sregs {
    let data = segment(USER_DS);
    let mut sregs = kvm_sregs {
        cs: segment(USER_CS),
        ss: data,
        ds: data,
        es: data,
        fs: kvm_segment {
            base: thread_pointer,
            ..data
        },
        gs: data,
        tr: kvm_segment {
            base: TSS_ADDR,
            limit: TSS_LIMIT,
            selector: TSS_SELECTOR.0,
            type_: TSS_BUSY,
            present: 1,
            ..Default::default()
        },
        ldt: kvm_segment {
            unusable: 1,
            ..Default::default()
        },
        cr0: CR0.bits(),
        cr3: PML4_ADDR,
        cr4: CR4.bits(),
        efer: EFER.bits(),
        // The reset value: xAPIC enabled at its usual address, this vCPU the bootstrap one.
        apic_base: 0xfee0_0000 | (1 << 11) | (1 << 8),
        ..Default::default()
    };
    (sregs.gdt.base, sregs.gdt.limit) = (GDT_ADDR, GDT_LIMIT);
    (sregs.idt.base, sregs.idt.limit) = (IDT_ADDR, IDT_LIMIT);
    sregs
}

/// Leaves an exception stub as its `iretq` would: back in the guest's code and stack segments
/// (RIP, RSP and RFLAGS are the general registers' part).
pub fn return_to_guest(sregs: &mut kvm_sregs) {
    sregs.cs = segment(USER_CS);
    sregs.ss = segment(USER_DS);
}

/// The segment register state loading `selector` from the GDT gives: the descriptor's fields
/// (Intel SDM Vol. 3, 3.4.5), unpacked as KVM takes them.
fn segment(selector: SegmentSelector) -> kvm_segment {
    let (_, flags) = SEGMENTS
        .iter()
        .find(|(index, _)| *index == selector.index())
        .expect("a selector of the GDT");
    let bits = flags.bits();
    let bit = |n: u32| ((bits >> n) & 1) as u8;
    let raw_limit = (bits & 0xffff) | ((bits >> 32) & 0xf_0000);
    kvm_segment {
        base: 0,
        limit: if bit(55) == 1 {
            ((raw_limit << 12) | 0xfff) as u32
        } else {
            raw_limit as u32
        },
        selector: selector.0,
        type_: ((bits >> 40) & 0xf) as u8,
        s: bit(44),
        dpl: ((bits >> 45) & 3) as u8,
        present: bit(47),
        avl: bit(52),
        l: bit(53),
        db: bit(54),
        g: bit(55),
        unusable: 0,
        padding: 0,
    }
}

/// Writes the GDT, the TSS with its I/O permission bitmap, the IDT and the exception stubs.
pub fn write_system_tables(memory: &mut GuestMemory) -> Result<(), LayoutError> {
    let fits = |written: Option<()>| written.ok_or(LayoutError::OutsideMemory("the system tables"));
    for (index, flags) in SEGMENTS {
        fits(memory.write_u64(GDT_ADDR + u64::from(index) * 8, flags.bits()))?;
    }
    let tss_descriptor = GDT_ADDR + u64::from(TSS) * 8;
    let limit = u64::from(TSS_LIMIT);
    let low = (limit & 0xffff)
        | ((TSS_ADDR & 0xff_ffff) << 16)
        | ((TSS_AVAILABLE | 0x80) << 40)
        | (((TSS_ADDR >> 24) & 0xff) << 56);
    fits(memory.write_u64(tss_descriptor, low))?;
    fits(memory.write_u64(tss_descriptor + 8, TSS_ADDR >> 32))?;
    let ist1 = TSS_ADDR + offset_of!(TaskStateSegment, interrupt_stack_table) as u64;
    fits(memory.write_u64(ist1, FAULT_STACK_TOP))?;
    let iomap_base = TSS_ADDR + offset_of!(TaskStateSegment, iomap_base) as u64;
    fits(memory.write(iomap_base, &(TSS_SIZE as u16).to_le_bytes()))?;
    fits(memory.write(TSS_ADDR + TSS_SIZE, &IO_PERMISSION_BITMAP))?;

    for vector in 0..EXCEPTION_VECTORS {
        let stub = STUBS_ADDR + u64::from(vector) * STUB_SIZE;
        fits(memory.write(stub, &stub_code(vector, stub)))?;
        let dpl = if USER_CALLABLE.iter().any(|&v| v as u8 == vector) {
            Ring3
        } else {
            Ring0
        };
        let [low, high] = interrupt_gate(stub, dpl);
        let gate = IDT_ADDR + u64::from(vector) * u64::from(IDT_ENTRY_SIZE);
        fits(memory.write_u64(gate, low))?;
        fits(memory.write_u64(gate + 8, high))?;
    }
    let common = [OUT_IMM8_AL, port::EXCEPTION as u8, JMP_REL8, SELF];
    fits(memory.write(STUB_COMMON, &common))
}

/// A vector's stub at `stub`: it pushes a dummy error code (if the CPU did not), then the
/// vector, and jumps to the common tail, which reports through `out` and never returns. The
/// host reads the frame at RSP: vector, error code, RIP, CS, RFLAGS, RSP, SS.
fn stub_code(vector: u8, stub: u64) -> Vec<u8> {
    let mut code = Vec::with_capacity(STUB_SIZE as usize);
    let with_error_code = WITH_ERROR_CODE.iter().any(|&v| v as u8 == vector);
    if !with_error_code {
        code.extend_from_slice(&[PUSH_IMM8, 0]);
    }
    code.extend_from_slice(&[PUSH_IMM8, vector]);
    let next = stub + code.len() as u64 + 5;
    let relative = (STUB_COMMON as i64 - next as i64) as i32;
    code.push(JMP_REL32);
    code.extend_from_slice(&relative.to_le_bytes());
    code
}

/// The 16-byte interrupt gate to `handler` through [`KERNEL_CS`] on the fault stack, callable
/// by `int` from privilege `dpl` and above.
fn interrupt_gate(handler: u64, dpl: x86_64::PrivilegeLevel) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (u64::from(KERNEL_CS.0) << 16)
        | (FAULT_STACK_IST << 32)
        | ((INTERRUPT_GATE | (dpl as u64) << GATE_DPL_SHIFT) << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_values() {
        // docs/abi.md's table.
        assert_eq!((USER_CS.0, USER_DS.0), (0x33, 0x2b));
        assert_eq!(CR0.bits(), 0x8005_0033);
        assert_eq!(CR4.bits(), (1 << 5) | (1 << 9) | (1 << 10));
        assert_eq!(EFER.bits(), 0xd01);
        assert_eq!((GDT_LIMIT, TSS_LIMIT, IDT_LIMIT), (0x47, 0x6f, 0x1ff));
        let code = segment(USER_CS);
        assert_eq!(
            (
                code.type_,
                code.s,
                code.dpl,
                code.present,
                code.l,
                code.db,
                code.g
            ),
            (0xb, 1, 3, 1, 1, 0, 1)
        );
        assert_eq!(code.limit, 0xffff_ffff);
        let data = segment(USER_DS);
        assert_eq!((data.type_, data.dpl, data.l, data.db), (0x3, 3, 0, 1));
    }

    #[test]
    fn stubs_fit_and_gates_lead_to_them() {
        for vector in 0..EXCEPTION_VECTORS {
            let stub = STUBS_ADDR + u64::from(vector) * STUB_SIZE;
            let code = stub_code(vector, stub);
            assert!(code.len() as u64 <= STUB_SIZE);
            // The jump lands on the common tail.
            let relative = i32::from_le_bytes(code[code.len() - 4..].try_into().unwrap());
            assert_eq!(
                (stub + code.len() as u64).wrapping_add_signed(relative.into()),
                STUB_COMMON
            );
            let [low, high] = interrupt_gate(stub, Ring0);
            assert_eq!((low & 0xffff) | ((low >> 48) << 16) | (high << 32), stub);
        }
        assert_eq!(stub_code(14, STUBS_ADDR)[..2], [PUSH_IMM8, 14]);
        assert_eq!(stub_code(3, STUBS_ADDR)[..4], [PUSH_IMM8, 0, PUSH_IMM8, 3]);
        // Only #BP's gate is open to `int3` from CPL 3.
        assert_eq!(interrupt_gate(STUBS_ADDR, Ring3)[0] >> 40 & 0xff, 0xee);
        assert_eq!(interrupt_gate(STUBS_ADDR, Ring0)[0] >> 40 & 0xff, 0x8e);
    }
}
