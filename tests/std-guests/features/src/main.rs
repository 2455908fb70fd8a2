//! What std gives a guest, one feature per line of output; the first argument picks how it
//! ends (`exit3`, `panic`), so the tests can check exit codes too.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args: {:?}", &args[1..]);
    eprintln!("to stderr");

    let greeting = std::env::var("GREETING").unwrap_or_else(|err| format!("<{err}>"));
    println!("GREETING: {greeting}");
    println!("HOME: {:?}", std::env::var("HOME").ok());

    let words = ["one", "two", "three", "two"];
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for word in words {
        *counts.entry(word).or_default() += 1;
    }
    let sorted: BTreeMap<_, _> = counts.iter().collect();
    println!("counts: {sorted:?}");
    let joined: String = words.iter().map(|w| w.to_uppercase()).collect::<Vec<_>>().join("-");
    println!("{}", format!("joined: {joined} ({} bytes)", joined.len()));

    // Two maps built the same way iterate alike only if their seeds are; std seeds each from
    // the entropy source.
    let seeded = |_| std::collections::hash_map::RandomState::new();
    let orders: Vec<Vec<u32>> = (0..2)
        .map(seeded)
        .map(|state| {
            let mut map = HashMap::with_hasher(state);
            map.extend((0..32).map(|i| (i, i)));
            map.keys().copied().collect()
        })
        .collect();
    println!("hash seeds differ: {}", orders[0] != orders[1]);

    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let slept = start.elapsed();
    println!("slept at least 20ms: {}", slept >= Duration::from_millis(20));
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("after 2026: {}", since_epoch.as_secs() > 1_767_225_600);

    let thread = std::thread::Builder::new().spawn(|| ());
    println!("thread: {:?}", thread.map(|_| ()).map_err(|err| err.to_string()));
    let file = std::fs::read("/etc/hostname");
    println!("fs::read: {:?}", file.map_err(|err| err.to_string()));

    match args.get(1).map(String::as_str) {
        Some("exit3") => std::process::exit(3),
        Some("panic") => panic!("the guest panicked on purpose"),
        _ => println!("done"),
    }
}
