//! Machine code of an ELF as comparable text: `objdump -d`, function by function, with what
//! legitimately differs between two builds of the same code taken out.
//!
//! Two builds of the same source by the same compiler differ in where things end up: embedded
//! source paths (panic locations) have different lengths, so data moves, and symbol hashes
//! depend on the build's flags. Neither is machine code. So an instruction is kept as its
//! mnemonic and operands, except that a branch or call target becomes the symbol it names
//! (its offset kept when it is inside the same function) and a RIP-relative displacement
//! becomes `rel`. Immediates, registers, stack offsets and the instruction sequence stay.
//! Padding after a function's last instruction (int3, nops) depends on what follows it and is
//! dropped.
//!
//! Unoptimized code can also differ in which stack slot holds which local: the official build
//! and ours of the same source by the same compiler do, in one generic function of the demo
//! guest. The frame layout is not behaviour, so a function that differs only in its stack
//! offsets (same instructions, same frame size) is reported as such, apart from the identical
//! ones; any other difference fails.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use xshell::{cmd, Shell};

/// One function's instructions: offset from the function start, normalized text.
type Body = Vec<(u64, String)>;

pub struct Code {
    /// The executable sections objdump disassembled.
    pub sections: Vec<String>,
    /// Their total size.
    pub bytes: u64,
    /// Bodies by normalized name; several functions can share a name once hashes are gone
    /// (generic instances), so each name holds a sorted list.
    by_name: BTreeMap<String, Vec<Body>>,
}

impl Code {
    pub fn of(sh: &Shell, elf: &Path) -> Result<Code> {
        let headers = cmd!(sh, "objdump -h -w {elf}").quiet().read()?;
        let mut sections = Vec::new();
        let mut bytes = 0;
        for line in headers.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 6 && fields[0].parse::<u32>().is_ok() && line.contains("CODE") {
                sections.push(fields[1].to_owned());
                bytes += u64::from_str_radix(fields[2], 16)?;
            }
        }
        let listing = cmd!(sh, "objdump -d -C -w --no-show-raw-insn {elf}")
            .quiet()
            .read()?;
        Ok(Code {
            sections,
            bytes,
            by_name: parse(&listing),
        })
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
        if let Some(difference) = first_difference(self, other, &without_stack_offsets) {
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

fn parse(listing: &str) -> BTreeMap<String, Vec<Body>> {
    // Name, start address, instructions with offsets from the start.
    let mut functions: Vec<(String, u64, Body)> = Vec::new();
    for line in listing.lines() {
        // `0000000000001234 <name>:` starts a function.
        if let Some((address, rest)) = line.split_once(" <") {
            if let (Ok(start), Some(name)) =
                (u64::from_str_radix(address, 16), rest.strip_suffix(">:"))
            {
                functions.push((normalize_name(name), start, Vec::new()));
                continue;
            }
        }
        // `    1234:\tmnemonic operands`
        let Some((address, instruction)) = line.trim_start().split_once(":\t") else {
            continue;
        };
        let (Ok(address), Some((_, start, body))) =
            (u64::from_str_radix(address, 16), functions.last_mut())
        else {
            continue;
        };
        body.push((address - *start, instruction.trim().to_owned()));
    }
    let mut by_name: BTreeMap<String, Vec<Body>> = BTreeMap::new();
    for (name, _, mut body) in functions {
        while body.last().is_some_and(|(_, text)| is_padding(text)) {
            body.pop();
        }
        let body = body
            .into_iter()
            .map(|(offset, text)| (offset, normalize(&text, &name)))
            .collect();
        by_name.entry(name).or_default().push(body);
    }
    for bodies in by_name.values_mut() {
        bodies.sort();
    }
    by_name
}

fn is_padding(instruction: &str) -> bool {
    instruction == "int3" || instruction.contains("nop") || instruction == "xchg   %ax,%ax"
}

/// `core::fmt::write::h0123456789abcdef` and `foo.llvm.123` lose their build-specific hashes,
/// and a trait object's auto traits get one order (the mangling orders them by a hash that
/// differs between builds of core).
fn normalize_name(name: &str) -> String {
    let name = name.replace(
        "core::marker::Sync + core::marker::Send",
        "core::marker::Send + core::marker::Sync",
    );
    let name = name.as_str();
    let name = match name.find(".llvm.") {
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
        Code {
            sections: vec![".text".into()],
            bytes: 0,
            by_name: parse(listing),
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
}
