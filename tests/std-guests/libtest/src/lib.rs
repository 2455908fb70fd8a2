//! libtest's own `#[test]`s in a std guest: passing, failing, ignored and should-panic ones.

pub fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        println!("captured unless the test fails");
        assert_eq!(add(2, 2), 4);
    }

    #[test]
    fn fails() {
        println!("output of a failing test is shown");
        assert_eq!(add(2, 2), 5, "two and two");
    }

    #[test]
    #[ignore = "slow"]
    fn ignored() {
        assert_eq!(add(1, 1), 2);
    }

    #[test]
    #[should_panic(expected = "overflow")]
    fn panics_as_expected() {
        let _ = add(u32::MAX, 1);
        panic!("overflow");
    }

    #[test]
    #[should_panic(expected = "another message")]
    fn panics_with_the_wrong_message() {
        panic!("overflow");
    }
}
