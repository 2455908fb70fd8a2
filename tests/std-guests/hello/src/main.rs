//! The std counterpart of examples/hello, for the std target's start-up benchmark.

fn main() {
    println!("Hello from a Hyperlight micro-VM!");
}
