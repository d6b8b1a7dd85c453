//! The kernel's own codes, spelled as people read them: errno names and taint letters.

macro_rules! errno_names {
    ($ret:expr; $($e:ident)*; $($n:literal => $s:literal),*) => {{
        let n = $ret.unsigned_abs();
        if n > i32::MAX as u64 {
            return None;
        }
        match n as i32 {
            $(libc::$e => Some(stringify!($e)),)*
            $($n => Some($s),)*
            _ => None,
        }
    }};
}

/// The name of a Linux errno (`EEXIST` for 17), from a syscall result or its negation;
/// `None` for 0 and for numbers no errno has. Numbers come from the libc crate, so a
/// name cannot be matched to the wrong number.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    errno_names!(
        ret;
        EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES
        EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY
        ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK
        ENOSYS ENOTEMPTY ELOOP ENOMSG EIDRM ECHRNG EL2NSYNC EL3HLT EL3RST ELNRNG EUNATCH
        ENOCSI EL2HLT EBADE EBADR EXFULL ENOANO EBADRQC EBADSLT EBFONT ENOSTR ENODATA ETIME
        ENOSR ENONET ENOPKG EREMOTE ENOLINK EADV ESRMNT ECOMM EPROTO EMULTIHOP EDOTDOT EBADMSG
        EOVERFLOW ENOTUNIQ EBADFD EREMCHG ELIBACC ELIBBAD ELIBSCN ELIBMAX ELIBEXEC EILSEQ
        ERESTART ESTRPIPE EUSERS ENOTSOCK EDESTADDRREQ EMSGSIZE EPROTOTYPE ENOPROTOOPT
        EPROTONOSUPPORT ESOCKTNOSUPPORT EOPNOTSUPP EPFNOSUPPORT EAFNOSUPPORT EADDRINUSE
        EADDRNOTAVAIL ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET ENOBUFS EISCONN
        ENOTCONN ESHUTDOWN ETOOMANYREFS ETIMEDOUT ECONNREFUSED EHOSTDOWN EHOSTUNREACH EALREADY
        EINPROGRESS ESTALE EUCLEAN ENOTNAM ENAVAIL EISNAM EREMOTEIO EDQUOT ENOMEDIUM
        EMEDIUMTYPE ECANCELED ENOKEY EKEYEXPIRED EKEYREVOKED EKEYREJECTED EOWNERDEAD
        ENOTRECOVERABLE ERFKILL EHWPOISON;
        // The kernel's own, which a tracepoint at syscall exit can see before the
        // signal code turns them into a restart or EINTR (include/linux/errno.h).
        512 => "ERESTARTSYS", 513 => "ERESTARTNOINTR", 514 => "ERESTARTNOHAND",
        515 => "ENOIOCTLCMD", 516 => "ERESTART_RESTARTBLOCK", 517 => "EPROBE_DEFER",
        518 => "EOPENSTALE", 519 => "ENOPARAM"
    )
}

/// The kernel's taint flags, by bit (`TAINT_*` in include/linux/panic.h): the letters
/// /proc/modules and /proc/sys/kernel/tainted use.
const TAINT_LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTNJ";

/// A module's taint bits as the kernel prints them: one letter per bit set, in bit order
/// ("OE"); a bit past the known ones prints as `?`. Written into `buf`, no allocation.
pub fn taint_letters(taints: u64, buf: &mut [u8; 64]) -> &str {
    let mut n = 0;
    for bit in 0..64 {
        if taints & (1 << bit) != 0 {
            buf[n] = TAINT_LETTERS.get(bit).copied().unwrap_or(b'?');
            n += 1;
        }
    }
    std::str::from_utf8(&buf[..n]).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_by_number_and_sign() {
        assert_eq!(errno_name(-17), Some("EEXIST"));
        assert_eq!(errno_name(17), Some("EEXIST"));
        assert_eq!(errno_name(-1), Some("EPERM"));
        assert_eq!(errno_name(-8), Some("ENOEXEC"));
        assert_eq!(errno_name(-512), Some("ERESTARTSYS"));
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(-4000), None);
        assert_eq!(errno_name(i64::MIN), None);
    }

    #[test]
    fn taint_letters_in_bit_order() {
        let mut buf = [0; 64];
        // TAINT_OOT_MODULE (12) and TAINT_UNSIGNED_MODULE (13): "OE", as lsmod shows it.
        assert_eq!(taint_letters((1 << 12) | (1 << 13), &mut buf), "OE");
        assert_eq!(taint_letters(1, &mut buf), "P");
        assert_eq!(taint_letters(0, &mut buf), "");
        assert_eq!(taint_letters(1 << 40, &mut buf), "?");
    }
}
