//! The rest of the Hermit ABI: threads, files, sockets, memory mapping, semaphores and task
//! queues, none of which a guest has. Each is defined, so every crate links; each fails with
//! `ENOSYS` (or its ABI's failure value), which std turns into an `io::Error` ("Function not
//! implemented") or, for `thread::spawn`, a panic saying the thread could not be created.

use core::ffi::c_void;

use super::errno::ENOSYS;

/// Defines `sys_NAME(ARGS) -> RET` returning `VALUE`; the arguments are never read, so plain
/// integers and untyped pointers stand for the ABI's structs.
macro_rules! unsupported {
    ($($name:ident($($arg:ty),*) -> $ret:ty = $value:expr;)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $arg),*) -> $ret {
                $value
            }
        )*
    };
}

/// `-ENOSYS` as the ABI's `isize` results.
const NOT_IMPLEMENTED: isize = -(ENOSYS as isize);

unsupported! {
    // Memory mapping and protection.
    sys_mmap(usize, u32, *mut *mut u8) -> i32 = -ENOSYS;
    sys_munmap(*mut u8, usize) -> i32 = -ENOSYS;
    sys_mprotect(*mut u8, usize, u32) -> i32 = -ENOSYS;
    // Semaphores.
    sys_sem_init(*mut c_void, i32, u32) -> i32 = -ENOSYS;
    sys_sem_destroy(*mut c_void) -> i32 = -ENOSYS;
    sys_sem_post(*mut c_void) -> i32 = -ENOSYS;
    sys_sem_trywait(*mut c_void) -> i32 = -ENOSYS;
    sys_sem_timedwait(*mut c_void, *const c_void) -> i32 = -ENOSYS;
    // Threads and tasks: `sys_spawn2` reports failure as thread id 0.
    sys_spawn(*mut u32, *const c_void, usize, u8, isize) -> i32 = -ENOSYS;
    sys_spawn2(*const c_void, usize, u8, usize, isize) -> u32 = 0;
    sys_join(u32) -> i32 = -ENOSYS;
    sys_notify(usize, i32) -> i32 = -ENOSYS;
    sys_add_queue(usize, i64) -> i32 = -ENOSYS;
    sys_wait(usize) -> i32 = -ENOSYS;
    sys_init_queue(usize) -> i32 = -ENOSYS;
    sys_destroy_queue(usize) -> i32 = -ENOSYS;
    sys_block_current_task() -> () = ();
    sys_block_current_task_with_timeout(u64) -> () = ();
    sys_wakeup_taskt(u32) -> () = ();
    // Files and directories.
    sys_open(*const c_void, i32, i32) -> i32 = -ENOSYS;
    sys_opendir(*const c_void) -> i32 = -ENOSYS;
    sys_unlink(*const c_void) -> i32 = -ENOSYS;
    sys_rmdir(*const c_void) -> i32 = -ENOSYS;
    sys_mkdir(*const c_void, u32) -> i32 = -ENOSYS;
    sys_stat(*const c_void, *mut c_void) -> i32 = -ENOSYS;
    sys_lstat(*const c_void, *mut c_void) -> i32 = -ENOSYS;
    sys_fstat(i32, *mut c_void) -> i32 = -ENOSYS;
    sys_getdents64(i32, *mut c_void, usize) -> i64 = -(ENOSYS as i64);
    sys_lseek(i32, isize, i32) -> isize = NOT_IMPLEMENTED;
    sys_dup(i32) -> i32 = -ENOSYS;
    sys_fcntl(i32, i32, i32) -> i32 = -ENOSYS;
    sys_ioctl(i32, i32, *mut c_void) -> i32 = -ENOSYS;
    sys_eventfd(u64, i16) -> i32 = -ENOSYS;
    sys_poll(*mut c_void, usize, i32) -> i32 = -ENOSYS;
    // Network.
    sys_network_init() -> i32 = -ENOSYS;
    sys_socket(i32, i32, i32) -> i32 = -ENOSYS;
    sys_accept(i32, *mut c_void, *mut u32) -> i32 = -ENOSYS;
    sys_bind(i32, *const c_void, u32) -> i32 = -ENOSYS;
    sys_connect(i32, *const c_void, u32) -> i32 = -ENOSYS;
    sys_listen(i32, i32) -> i32 = -ENOSYS;
    sys_recv(i32, *mut u8, usize, i32) -> isize = NOT_IMPLEMENTED;
    sys_recvfrom(i32, *mut u8, usize, i32, *mut c_void, *mut u32) -> isize = NOT_IMPLEMENTED;
    sys_send(i32, *const c_void, usize, i32) -> isize = NOT_IMPLEMENTED;
    sys_sendto(i32, *const c_void, usize, i32, *const c_void, u32) -> isize = NOT_IMPLEMENTED;
    sys_shutdown(i32, i32) -> i32 = -ENOSYS;
    sys_shutdown_socket(i32, i32) -> i32 = -ENOSYS;
    sys_getpeername(i32, *mut c_void, *mut u32) -> i32 = -ENOSYS;
    sys_getsockname(i32, *mut c_void, *mut u32) -> i32 = -ENOSYS;
    sys_getsockopt(i32, i32, i32, *mut c_void, *mut u32) -> i32 = -ENOSYS;
    sys_setsockopt(i32, i32, i32, *const c_void, u32) -> i32 = -ENOSYS;
    sys_getaddrbyname(*const c_void, *mut u8, usize) -> i32 = -ENOSYS;
    sys_getaddrinfo(*const c_void, *const c_void, *const c_void, *mut *mut c_void) -> i32 = -ENOSYS;
    sys_freeaddrinfo(*mut c_void) -> () = ();
}
