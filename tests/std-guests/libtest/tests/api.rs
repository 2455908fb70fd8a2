#[test]
fn adds_from_outside() {
    assert_eq!(libtest_demo::add(40, 2), 42);
}
