//! Any bytes as the register block of a `G` packet gdb sends (`--gdb`): reading it never
//! panics, and a block it accepts is written back (`g`) as bytes that read to the same
//! registers.
#![no_main]

use gdbstub::arch::Registers;
use hyperlight_run::gdb::GuestRegs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut regs = GuestRegs::default();
    if regs.gdb_deserialize(data).is_err() {
        return;
    }
    let mut written = Vec::new();
    regs.gdb_serialize(|byte| written.push(byte.unwrap_or(0)));
    let mut again = GuestRegs::default();
    again
        .gdb_deserialize(&written)
        .expect("a block the runner wrote reads back");
    assert_eq!(again, regs);
});
