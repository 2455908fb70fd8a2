//! Machine code of an ELF as comparable text: `objdump -d` (GNU for x86-64, LLVM for AArch64),
//! function by function, with what legitimately differs between two builds of the same code
//! taken out.
//!
//! Two builds of the same source by the same compiler differ in where things end up: embedded
//! source paths (panic locations) have different lengths, so data moves, and symbol hashes
//! depend on the build's flags. Neither is machine code. So an instruction is kept as its
//! mnemonic and operands, except that a branch or call target becomes the symbol it names
//! (its offset kept when it is inside the same function) and a RIP-relative displacement
//! becomes `rel`. On AArch64 a PC-relative address (`adrp`, `adr`, a literal load) becomes
//! `rel`, and the low 12 bits that complete an `adrp` (in the next `add` or load/store based on
//! its register) become `lo12`. Immediates, registers, stack offsets and the instruction
//! sequence stay. Padding after a function's last instruction (int3, nops, `udf #0`) depends on
//! what follows it and is dropped.
//!
//! Unoptimized code can also differ in which stack slot holds which local: the official build
//! and ours of the same source by the same compiler do, in one generic function of the demo
//! guest. The frame layout is not behaviour, so a function that differs only in its stack
//! offsets (same instructions, same frame size) is reported as such, apart from the identical
//! ones; any other difference fails.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use object::{Architecture, Object};
use xshell::{cmd, Shell};

/// One function's instructions: offset from the function start, normalized text.
type Body = Vec<(u64, String)>;

/// The machines `Code::of` reads, each in its disassembler's syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Machine {
    /// GNU objdump, AT&T syntax.
    X86_64,
    /// llvm-objdump: GNU objdump is often built for x86 only.
    Aarch64,
}

pub struct Code {
    /// The executable sections objdump disassembled.
    pub sections: Vec<String>,
    /// Their total size.
    pub bytes: u64,
    machine: Machine,
    /// Bodies by normalized name; several functions can share a name once hashes are gone
    /// (generic instances), so each name holds a sorted list.
    by_name: BTreeMap<String, Vec<Body>>,
}

impl Code {
    pub fn of(sh: &Shell, elf: &Path) -> Result<Code> {
        let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
        let machine = match object::File::parse(&*data)
            .with_context(|| format!("parsing {}", elf.display()))?
            .architecture()
        {
            Architecture::X86_64 => Machine::X86_64,
            Architecture::Aarch64 => Machine::Aarch64,
            other => bail!(
                "{}: cannot compare {other:?} machine code (only x86-64 and AArch64)",
                elf.display()
            ),
        };
        let (headers, listing) = match machine {
            Machine::X86_64 => (
                cmd!(sh, "objdump -h -w {elf}").quiet().read()?,
                cmd!(sh, "objdump -d -C -w --no-show-raw-insn {elf}")
                    .quiet()
                    .read()?,
            ),
            // The guest target is ARMv8.1-A; by default LLVM 14 decodes ARMv8.0 only and shows
            // the LSE atomics as `<unknown>`.
            Machine::Aarch64 => (
                cmd!(sh, "llvm-objdump -h {elf}").quiet().read()?,
                cmd!(
                    sh,
                    "llvm-objdump -d -C --no-show-raw-insn --mattr=+v8.1a {elf}"
                )
                .quiet()
                .read()?,
            ),
        };
        // Without its bytes, an instruction that is not decoded equals any other one.
        if let Some(line) = listing.lines().find(|line| line.ends_with("\t<unknown>")) {
            bail!(
                "the disassembler cannot decode an instruction of {}: {}",
                elf.display(),
                line.trim()
            );
        }
        let mut sections = Vec::new();
        let mut bytes = 0;
        for line in headers.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // GNU: `Idx Name Size VMA LMA File-off Algn`, then flags (CODE); LLVM:
            // `Idx Name Size VMA Type` (TEXT).
            let code = match machine {
                Machine::X86_64 => fields.len() > 6 && line.contains("CODE"),
                Machine::Aarch64 => fields.get(4) == Some(&"TEXT"),
            };
            if code && fields[0].parse::<u32>().is_ok() {
                sections.push(fields[1].to_owned());
                bytes += u64::from_str_radix(fields[2], 16)?;
            }
        }
        Ok(Code {
            sections,
            bytes,
            machine,
            by_name: parse(&listing, machine),
        })
    }

    /// How the listings were made and compared, for the report.
    pub fn method(&self) -> &'static str {
        match self.machine {
            Machine::X86_64 => {
                "objdump -d, instruction by instruction; branch and call targets by symbol, \
                 RIP-relative displacements ignored (they move with the length of embedded \
                 source paths)"
            }
            Machine::Aarch64 => {
                "llvm-objdump -d --mattr=+v8.1a, instruction by instruction; branch and call \
                 targets by symbol, PC-relative addresses (adrp, adr, literal loads) and the low \
                 12 bits completing an adrp ignored (they move with the length of embedded \
                 source paths)"
            }
        }
    }

    pub fn functions(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    pub fn instructions(&self) -> usize {
        self.by_name.values().flatten().map(Vec::len).sum()
    }

    /// Compares function by function: `Err` describes the first difference that is more than
    /// a stack layout; `Ok` lists the functions that differ only in their stack offsets.
    pub fn compare(&self, other: &Code) -> Result<Vec<String>, String> {
        if self.machine != other.machine {
            return Err(format!(
                "one build is {:?} machine code, the other {:?}",
                self.machine, other.machine
            ));
        }
        let view = match self.machine {
            Machine::X86_64 => without_stack_offsets,
            Machine::Aarch64 => without_stack_offsets_a64,
        };
        if let Some(difference) = first_difference(self, other, &view) {
            return Err(difference);
        }
        Ok(self
            .by_name
            .iter()
            .filter(|(name, bodies)| other.by_name.get(*name) != Some(bodies))
            .map(|(name, _)| name.clone())
            .collect())
    }
}

/// The first difference in name order after `view` rewrote each instruction, described for a
/// person: which function, at which offset.
fn first_difference(a: &Code, b: &Code, view: &dyn Fn(&str) -> String) -> Option<String> {
    let viewed = |body: &Body| -> Vec<(u64, String)> {
        body.iter().map(|(at, text)| (*at, view(text))).collect()
    };
    let names: std::collections::BTreeSet<&String> =
        a.by_name.keys().chain(b.by_name.keys()).collect();
    for name in names {
        let (ours, theirs) = (a.by_name.get(name), b.by_name.get(name));
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            let side = if ours.is_none() { "first" } else { "second" };
            return Some(format!(
                "function `{name}` is missing from the {side} build"
            ));
        };
        if ours.len() != theirs.len() {
            return Some(format!(
                "`{name}` exists {} times in one build and {} in the other",
                ours.len(),
                theirs.len()
            ));
        }
        let mut ours: Vec<_> = ours.iter().map(viewed).collect();
        let mut theirs: Vec<_> = theirs.iter().map(viewed).collect();
        ours.sort();
        theirs.sort();
        for (x, y) in ours.iter().zip(&theirs) {
            if x == y {
                continue;
            }
            let at = x.iter().zip(y).position(|(i, j)| i != j);
            return Some(match at {
                Some(i) => format!(
                    "function `{name}` at offset {:#x}: `{}` vs `{}`",
                    x[i].0, x[i].1, y[i].1
                ),
                None => format!(
                    "function `{name}` has {} instructions in one build and {} in the other",
                    x.len(),
                    y.len()
                ),
            });
        }
    }
    None
}

/// `mov %rdi,0xd8(%rsp)` → `mov %rdi,slot(%rsp)`: the instruction without its frame offset.
fn without_stack_offsets(text: &str) -> String {
    let mut out = text.to_owned();
    for register in ["(%rsp", "(%rbp"] {
        while let Some(end) = out.find(register) {
            let start = out[..end].rfind([' ', ',']).map_or(0, |i| i + 1);
            out = format!("{}slot{}", &out[..start], out[end..].replacen('(', "[", 1));
        }
    }
    out.replace('[', "(")
}

/// `str x8, [sp, #48]` → `str x8, [sp, slot]`, `add x9, sp, #312` → `add x9, sp, slot`: the
/// AArch64 instruction without its frame offset. What moves sp itself (`sub sp, sp, #592`,
/// `stp x29, x30, [sp, #-16]!`, `ldp x29, x30, [sp], #16`) is the frame size and stays.
fn without_stack_offsets_a64(text: &str) -> String {
    let (mnemonic, operands) = text.split_once(' ').unwrap_or((text, ""));
    let frame = |register: &str| register == "sp" || register == "x29";
    match (
        mnemonic,
        operands.split(", ").collect::<Vec<_>>().as_slice(),
    ) {
        ("add" | "sub", [to, base, offset])
            if frame(base) && !frame(to) && offset.starts_with('#') =>
        {
            return format!("{mnemonic} {to}, {base}, slot");
        }
        // `mov x9, sp` is `add x9, sp, #0`.
        ("mov", [to, "sp"]) if !frame(to) => return format!("add {to}, sp, slot"),
        _ => {}
    }
    for base in ["[sp", "[x29"] {
        let Some(start) = text.find(base) else {
            continue;
        };
        let Some(end) = text[start..].find(']').map(|i| start + i + 1) else {
            continue;
        };
        let inside = &text[start + base.len()..end];
        let after = &text[end..];
        let writeback = after.starts_with('!') || after.starts_with(", #");
        if (inside == "]" || inside.starts_with(", #")) && !writeback {
            return format!("{}{base}, slot]{after}", &text[..start]);
        }
    }
    text.to_owned()
}

fn parse(listing: &str, machine: Machine) -> BTreeMap<String, Vec<Body>> {
    // Name, start address, instructions with offsets from the start.
    let mut functions: Vec<(String, u64, Body)> = Vec::new();
    for line in listing.lines() {
        // `0000000000001234 <name>:` starts a function.
        if let Some((address, rest)) = line.split_once(" <") {
            if let (Ok(start), Some(name)) =
                (u64::from_str_radix(address, 16), rest.strip_suffix(">:"))
            {
                // ARM mapping symbols mark what follows as code (`$x`) or data (`$d`, a literal
                // pool): it still belongs to the function before.
                if !name.starts_with('$') {
                    functions.push((normalize_name(name), start, Vec::new()));
                }
                continue;
            }
        }
        // GNU `    1234:\tmnemonic operands`; LLVM `   1234:      \tmnemonic\toperands`, or
        // `   1234:\t60 e3 ff ff\t.word\t0xffffe360` for data.
        let Some((address, instruction)) = line.trim_start().split_once(':') else {
            continue;
        };
        let (Ok(address), Some((_, start, body))) =
            (u64::from_str_radix(address, 16), functions.last_mut())
        else {
            continue;
        };
        let instruction = instruction.trim();
        if !instruction.is_empty() {
            body.push((address - *start, instruction.to_owned()));
        }
    }
    let mut by_name: BTreeMap<String, Vec<Body>> = BTreeMap::new();
    for (name, _, mut body) in functions {
        while body.last().is_some_and(|(_, text)| is_padding(text)) {
            body.pop();
        }
        let mut pages = Vec::new();
        let body = body
            .into_iter()
            .map(|(offset, text)| {
                let text = match machine {
                    Machine::X86_64 => normalize(&text, &name),
                    Machine::Aarch64 => normalize_a64(&text, &name, &mut pages),
                };
                (offset, text)
            })
            .collect();
        by_name.entry(name).or_default().push(body);
    }
    for bodies in by_name.values_mut() {
        bodies.sort();
    }
    by_name
}

fn is_padding(instruction: &str) -> bool {
    instruction == "int3"
        || instruction.contains("nop")
        || instruction == "xchg   %ax,%ax"
        || instruction == "udf\t#0"
}

/// `core::fmt::write::h0123456789abcdef` and `foo.llvm.123` (LLVM: `foo (.llvm.123)`) lose
/// their build-specific hashes, and a trait object's auto traits get one order (the mangling
/// orders them by a hash that differs between builds of core).
fn normalize_name(name: &str) -> String {
    let name = name.replace(
        "core::marker::Sync + core::marker::Send",
        "core::marker::Send + core::marker::Sync",
    );
    let name = name.as_str();
    let name = match name.find(" (.llvm.").or_else(|| name.find(".llvm.")) {
        Some(at) => &name[..at],
        None => name,
    };
    match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path.to_owned()
        }
        _ => name.to_owned(),
    }
}

fn normalize(instruction: &str, function: &str) -> String {
    // objdump's trailing `# 1234 <symbol>` comment only repeats an address.
    let instruction = instruction.split(" # ").next().unwrap().trim_end();
    let (mnemonic, operands) = instruction
        .split_once(char::is_whitespace)
        .map_or((instruction, ""), |(m, o)| (m, o.trim()));
    let is_branch = mnemonic.starts_with('j') || mnemonic.starts_with("call");
    if is_branch {
        // `1234 <target+0x10>`: keep the symbol, and the offset only inside this function.
        if let Some((_, symbol)) = operands.split_once(" <") {
            let symbol = symbol.trim_end_matches('>');
            let (target, offset) = symbol.split_once('+').unwrap_or((symbol, ""));
            let target = normalize_name(target);
            return if target == function {
                format!("{mnemonic} <self+{offset}>")
            } else {
                format!("{mnemonic} <{target}>")
            };
        }
    }
    let operands = match operands.find("(%rip)") {
        Some(end) => {
            let start = operands[..end].rfind([' ', ',']).map_or(0, |i| i + 1);
            format!("{}rel{}", &operands[..start], &operands[end..])
        }
        None => operands.to_owned(),
    };
    format!("{mnemonic} {operands}").trim_end().to_owned()
}

/// llvm-objdump's `mnemonic\toperands` as `mnemonic operands`, normalized as on x86: a branch
/// target by symbol, a PC-relative address `rel`, and the low 12 bits completing an `adrp`
/// `lo12`. `pages` are the registers of the `adrp`s whose low half is still to come.
fn normalize_a64(instruction: &str, function: &str, pages: &mut Vec<String>) -> String {
    // Data in code shows its bytes before the directive, which repeats them.
    let instruction = match instruction.split_once('\t') {
        Some((_, data)) if data.starts_with('.') => data,
        _ => instruction,
    };
    let (mnemonic, operands) = instruction
        .split_once('\t')
        .map_or((instruction, ""), |(m, o)| (m, o.trim()));
    let is_branch = matches!(mnemonic, "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz")
        || mnemonic.starts_with("b.");
    let is_pc_relative = matches!(mnemonic, "adrp" | "adr")
        || (matches!(mnemonic, "ldr" | "ldrsw" | "prfm") && !operands.contains('['));
    if let (true, Some((before, symbol))) = (is_branch, operands.split_once(" <")) {
        // `tbnz w8, #0, 0x56870 <target+0xcc>`: keep the symbol, and the offset only inside
        // this function.
        let registers = before
            .rsplit_once(", ")
            .map_or(String::new(), |(r, _)| format!("{r}, "));
        let symbol = symbol.strip_suffix('>').unwrap_or(symbol);
        let (target, offset) = match symbol.rsplit_once("+0x") {
            Some((target, offset)) if offset.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (target, format!("+0x{offset}"))
            }
            _ => (symbol, String::new()),
        };
        let target = normalize_name(target);
        return if target == function {
            format!("{mnemonic} {registers}<self{offset}>")
        } else {
            format!("{mnemonic} {registers}<{target}>")
        };
    }
    let normalized = if is_pc_relative {
        // `adrp x8, 0x11a000 <…>`, `adr x3, #711520`, `ldr x5, 0x5fe90 <$d>`.
        let register = operands.split_once(", ").map_or(operands, |(r, _)| r);
        format!("{register}, rel")
    } else {
        pages
            .iter()
            .find_map(|page| with_lo12(mnemonic, operands, page))
            .unwrap_or_else(|| operands.to_owned())
    };
    // The first instruction naming an `adrp`'s register after it adds the low half or not;
    // either way the register is no longer just the page.
    pages.retain(|page| !names(operands, page));
    if let ("adrp", Some((register, _))) = (mnemonic, normalized.split_once(',')) {
        pages.push(register.to_owned());
    }
    format!("{mnemonic} {normalized}").trim_end().to_owned()
}

/// `operands` with the low half of the address whose page `adrp` put in `register` as `lo12`,
/// if they add it: `add x0, x0, #2825`, `ldr x0, [x8, #3112]`, `[x8]` for a low half of 0.
fn with_lo12(mnemonic: &str, operands: &str, register: &str) -> Option<String> {
    if let ("add", [to, base, offset]) = (
        mnemonic,
        operands.split(", ").collect::<Vec<_>>().as_slice(),
    ) {
        if *base == register && offset.starts_with('#') {
            return Some(format!("{to}, {base}, lo12"));
        }
    }
    let base = format!("[{register}");
    let start = operands.find(&base)?;
    let inside = &operands[start + base.len()..];
    let end = inside.find(']')?;
    (end == 0 || inside.starts_with(", #"))
        .then(|| format!("{}{base}, lo12]{}", &operands[..start], &inside[end + 1..]))
}

/// Whether `operands` name the 64-bit `register` (`x8`), or its low half (`w8`).
fn names(operands: &str, register: &str) -> bool {
    operands
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word.len() > 1 && word[1..] == register[1..] && matches!(&word[..1], "x" | "w"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_what_moves_and_keeps_what_is_code() {
        let f = "demo::main";
        assert_eq!(
            normalize("lea    0x1234(%rip),%rdi        # 5678 <anon.1>", f),
            "lea rel(%rip),%rdi"
        );
        assert_eq!(
            normalize("call   1a2b <core::panicking::panic::h0123456789abcdef>", f),
            "call <core::panicking::panic>"
        );
        assert_eq!(
            normalize("jne    40 <demo::main+0x40>", f),
            "jne <self+0x40>"
        );
        assert_eq!(normalize("mov    $0x2a,%eax", f), "mov $0x2a,%eax");
        assert_eq!(
            normalize("mov    -0x8(%rbp),%rax", f),
            "mov -0x8(%rbp),%rax"
        );
        assert_eq!(normalize("ret", f), "ret");
        assert_eq!(normalize_name("foo.llvm.12345"), "foo");
        assert_eq!(
            without_stack_offsets("mov    %rdi,0xd8(%rsp)"),
            "mov    %rdi,slot(%rsp)"
        );
        assert_eq!(
            without_stack_offsets("lea    -0x10(%rbp),%rax"),
            "lea    slot(%rbp),%rax"
        );
    }

    fn code(listing: &str) -> Code {
        code_of(listing, Machine::X86_64)
    }

    fn code_of(listing: &str, machine: Machine) -> Code {
        Code {
            sections: vec![".text".into()],
            bytes: 0,
            machine,
            by_name: parse(listing, machine),
        }
    }

    const LISTING: &str = "
0000000000001000 <demo::add>:
    1000:\tsub    $0x28,%rsp
    1004:\tmov    %rdi,0x8(%rsp)
    1009:\tadd    $0x2a,%esi
    100c:\tcall   2000 <core::panicking::panic::h0123456789abcdef>
    1011:\tret
    1012:\tint3
";

    #[test]
    fn a_real_difference_names_the_function_and_offset() {
        let other = LISTING.replace("$0x2a", "$0x2b");
        let difference = code(LISTING).compare(&code(&other)).unwrap_err();
        assert_eq!(
            difference,
            "function `demo::add` at offset 0x9: `add $0x2a,%esi` vs `add $0x2b,%esi`"
        );
    }

    #[test]
    fn stack_offsets_and_padding_alone_are_reported_not_failed() {
        let other = LISTING
            .replace("0x8(%rsp)", "0x10(%rsp)")
            .replace("1012:\tint3", "1012:\tnop");
        assert_eq!(
            code(LISTING).compare(&code(&other)),
            Ok(vec!["demo::add".to_owned()])
        );
        assert_eq!(code(LISTING).compare(&code(LISTING)), Ok(vec![]));
    }

    #[test]
    fn aarch64_normalizes_what_moves_and_keeps_what_is_code() {
        let f = "demo::main";
        let one = |text: &str| normalize_a64(text, f, &mut Vec::new());
        assert_eq!(
            one("bl\t0x55bb0 <core::panicking::panic::h0123456789abcdef>"),
            "bl <core::panicking::panic>"
        );
        assert_eq!(
            one("tbnz\tw8, #0, 0x56870 <demo::main+0xcc>"),
            "tbnz w8, #0, <self+0xcc>"
        );
        assert_eq!(one("b.ne\t0x56800 <demo::main>"), "b.ne <self>");
        assert_eq!(one("adr\tx3, #711520"), "adr x3, rel");
        assert_eq!(one("ldr\tx5, 0x5fe90 <$d>"), "ldr x5, rel");
        assert_eq!(one("mov\tw10, #8"), "mov w10, #8");
        assert_eq!(one("str\tx10, [x9, #8]"), "str x10, [x9, #8]");
        assert_eq!(one("60 e3 ff ff\t.word\t0xffffe360"), ".word 0xffffe360");
        assert_eq!(normalize_name("foo (.llvm.4773966667577433997)"), "foo");

        // The low half of an adrp: its first use, in this function.
        let pairs = |listing: &[&str]| -> Vec<String> {
            let mut pages = Vec::new();
            listing
                .iter()
                .map(|text| normalize_a64(text, f, &mut pages))
                .collect()
        };
        assert_eq!(
            pairs(&[
                "adrp\tx0, 0x9000 <demo::main+0x48>",
                "mov\tw1, #2",
                "add\tx0, x0, #2825",
                "add\tx0, x0, #16",
            ]),
            [
                "adrp x0, rel",
                "mov w1, #2",
                "add x0, x0, lo12",
                "add x0, x0, #16"
            ]
        );
        assert_eq!(
            pairs(&[
                "adrp\tx8, 0x11a000 <foo+0x30>",
                "ldr\tx0, [x8]",
                "adrp\tx9, 0x11b000 <foo+0x30>",
                "str\tw8, [x9, #1696]",
                "adrp\tx1, 0x11b000 <foo+0x30>",
                "mov\tx2, x1",
                "ldr\tx3, [x1, #8]",
                // Two pages pending at once.
                "adrp\tx9, 0x10a000 <foo+0x30>",
                "adrp\tx0, 0xa000 <foo+0x30>",
                "add\tx8, sp, #8",
                "ldr\tx9, [x9, #3032]",
                "add\tx0, x0, #1592",
            ]),
            [
                "adrp x8, rel",
                "ldr x0, [x8, lo12]",
                "adrp x9, rel",
                "str w8, [x9, lo12]",
                "adrp x1, rel",
                "mov x2, x1",
                "ldr x3, [x1, #8]",
                "adrp x9, rel",
                "adrp x0, rel",
                "add x8, sp, #8",
                "ldr x9, [x9, lo12]",
                "add x0, x0, lo12",
            ]
        );

        let slots = without_stack_offsets_a64;
        assert_eq!(slots("str x8, [sp, #48]"), "str x8, [sp, slot]");
        assert_eq!(slots("ldr x8, [sp]"), "ldr x8, [sp, slot]");
        assert_eq!(slots("ldur x8, [x29, #-8]"), "ldur x8, [x29, slot]");
        assert_eq!(slots("add x9, sp, #312"), "add x9, sp, slot");
        assert_eq!(slots("mov x9, sp"), "add x9, sp, slot");
        for frame in [
            "stp x29, x30, [sp, #-16]!",
            "ldp x29, x30, [sp], #16",
            "sub sp, sp, #592",
            "add x29, sp, #16",
            "str x8, [x9, #8]",
        ] {
            assert_eq!(slots(frame), frame);
        }
    }

    const A64_LISTING: &str = "
0000000000054000 <demo::add>:
   54000:      \tstp\tx29, x30, [sp, #-16]!
   54004:      \tsub\tsp, sp, #32
   54008:      \tstr\tx0, [sp, #8]
   5400c:      \tadrp\tx8, 0x11a000 <demo::add+0x30>
   54010:      \tldr\tx0, [x8, #3112]
   54014:      \tadd\tw1, w1, #42
   54018:      \tcbz\tx0, 0x54024 <demo::add+0x24>
   5401c:      \tbl\t0x56000 <core::panicking::panic::h0123456789abcdef>
   54020:      \tnop
   54024:      \tadr\tx3, #711520
   54028:      \tadd\tsp, sp, #32
   5402c:      \tldp\tx29, x30, [sp], #16
   54030:      \tret
   54034:      \tudf\t#0

0000000000054038 <pivot_stack>:
   54038:      \tldr\tx5, 0x54040 <$d>
   5403c:      \tret

0000000000054040 <$d>:
   54040:\t90 df ff ff\t.word\t0xffffdf90
\t\t...
";

    #[test]
    fn aarch64_a_real_difference_names_the_function_and_offset() {
        let ours = code_of(A64_LISTING, Machine::Aarch64);
        assert_eq!(ours.functions(), 2);
        assert_eq!(ours.instructions(), 13 + 3);
        let other = A64_LISTING.replace("#42", "#43");
        assert_eq!(
            ours.compare(&code_of(&other, Machine::Aarch64)),
            Err(
                "function `demo::add` at offset 0x14: `add w1, w1, #42` vs `add w1, w1, #43`"
                    .into()
            )
        );
        // The frame size is not a stack slot.
        let other = A64_LISTING.replace("sp, sp, #32", "sp, sp, #48");
        assert_eq!(
            ours.compare(&code_of(&other, Machine::Aarch64)),
            Err(
                "function `demo::add` at offset 0x4: `sub sp, sp, #32` vs `sub sp, sp, #48`".into()
            )
        );
        // A literal pool is compared with its function.
        let other = A64_LISTING.replace("0xffffdf90", "0xffffdf98");
        assert_eq!(
            ours.compare(&code_of(&other, Machine::Aarch64)),
            Err(
                "function `pivot_stack` at offset 0x8: `.word 0xffffdf90` vs `.word 0xffffdf98`"
                    .into()
            )
        );
        assert!(ours.compare(&code(LISTING)).is_err());
    }

    #[test]
    fn aarch64_moved_data_is_equal_and_stack_offsets_are_reported() {
        let ours = code_of(A64_LISTING, Machine::Aarch64);
        let moved = A64_LISTING
            .replace("0x11a000 <demo::add+0x30>", "0x11b000 <demo::add+0x28>")
            .replace("#3112", "#16")
            .replace("#711520", "#711840")
            .replace("54034:      \tudf\t#0", "54034:      \tnop");
        assert_eq!(ours.compare(&code_of(&moved, Machine::Aarch64)), Ok(vec![]));
        let stack = A64_LISTING.replace("[sp, #8]", "[sp, #16]");
        assert_eq!(
            ours.compare(&code_of(&stack, Machine::Aarch64)),
            Ok(vec!["demo::add".to_owned()])
        );
    }
}
