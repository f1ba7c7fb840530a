//! Spawn a command attached to a new pseudo-terminal.

use std::ffi::CString;
use std::io;
use std::os::unix::io::RawFd;

pub struct Pty {
    pub master: RawFd,
    pub pid: libc::pid_t,
}

#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

impl Pty {
    /// Forks, opens a pty and executes `program` with `args` in the child.
    pub fn spawn(program: &str, args: &[&str], size: Size) -> io::Result<Pty> {
        let mut master: libc::c_int = 0;
        let mut ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        let prog = CString::new(program).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut argv: Vec<CString> = vec![prog.clone()];
        for a in args {
            argv.push(CString::new(*a).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?);
        }
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let pid = unsafe { libc::forkpty(&mut master, std::ptr::null_mut(), std::ptr::null_mut(), &mut ws) };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::execvp(prog.as_ptr(), ptrs.as_ptr());
                libc::_exit(127);
            },
            _ => Ok(Pty { master, pid }),
        }
    }

    pub fn resize(&self, size: Size) -> io::Result<()> {
        let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        if unsafe { libc::ioctl(self.master, libc::TIOCSWINSZ, &ws) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn wait(&self) -> io::Result<i32> {
        let mut status = 0;
        if unsafe { libc::waitpid(self.pid, &mut status, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(libc::WEXITSTATUS(status))
    }
}
