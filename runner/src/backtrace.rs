//! Walking a crashed guest's stack with the image's `.eh_frame` unwind tables (guests are built
//! without frame pointers), so a crash report shows the callers too, not just the faulting
//! function, which in a debug build is often a tiny helper from `core`.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EhFrame, EndianSlice, LittleEndian, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};
use object::{Object, ObjectSection};

use crate::layout::MemoryMap;
use crate::memory::GuestMemory;

/// Deeper stacks are cut off: the report is for a human.
const MAX_FRAMES: usize = 64;

/// The registers unwinding starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartRegisters {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
}

/// Guest code addresses of the frames, innermost first: the faulting `rip`, then each return
/// address. Stops quietly at anything it cannot follow.
pub fn walk(elf: &[u8], map: &MemoryMap, memory: &GuestMemory, start: StartRegisters) -> Vec<u64> {
    let Ok(file) = object::File::parse(elf) else {
        return vec![start.rip];
    };
    // Guests built with panic=abort have no unwind tables in .eh_frame, but debug builds carry
    // the same information in .debug_frame.
    if let Some((data, _)) = section(&file, ".debug_frame") {
        let mut debug_frame = DebugFrame::new(data, LittleEndian);
        debug_frame.set_address_size(8);
        let bases = BaseAddresses::default();
        return walk_with(&debug_frame, &bases, map, memory, start);
    }
    if let Some((data, address)) = section(&file, ".eh_frame") {
        let bases = BaseAddresses::default().set_eh_frame(address);
        return walk_with(
            &EhFrame::new(data, LittleEndian),
            &bases,
            map,
            memory,
            start,
        );
    }
    vec![start.rip]
}

fn section<'data>(file: &object::File<'data>, name: &str) -> Option<(&'data [u8], u64)> {
    let section = file.section_by_name(name)?;
    Some((section.data().ok()?, section.address()))
}

fn walk_with<'data, S: UnwindSection<EndianSlice<'data, LittleEndian>>>(
    table: &S,
    bases: &BaseAddresses,
    map: &MemoryMap,
    memory: &GuestMemory,
    start: StartRegisters,
) -> Vec<u64> {
    let mut frames = vec![start.rip];
    let mut context = UnwindContext::new();
    let StartRegisters {
        mut rip,
        mut rsp,
        mut rbp,
    } = start;
    while frames.len() < MAX_FRAMES {
        if !map.in_image(rip) {
            break;
        }
        // A return address points after the call; look up the call itself.
        let link_address = rip.wrapping_sub(map.load_bias) - u64::from(frames.len() > 1);
        let Ok(row) =
            table.unwind_info_for_address(bases, &mut context, link_address, S::cie_from_offset)
        else {
            break;
        };
        let cfa = match *row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => {
                rsp.wrapping_add_signed(offset)
            }
            CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => {
                rbp.wrapping_add_signed(offset)
            }
            _ => break,
        };
        if let RegisterRule::Offset(offset) = row.register(X86_64::RBP) {
            match memory.read_u64(cfa.wrapping_add_signed(offset)) {
                Some(saved) => rbp = saved,
                None => break,
            }
        }
        let return_address = match row.register(X86_64::RA) {
            RegisterRule::Offset(offset) => memory.read_u64(cfa.wrapping_add_signed(offset)),
            _ => None,
        };
        match return_address {
            Some(address) if address != 0 => {
                rip = address;
                rsp = cfa;
                frames.push(rip);
            }
            _ => break,
        }
    }
    frames
}
