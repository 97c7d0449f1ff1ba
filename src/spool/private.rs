//! The spool's folder and file, readable by this user only: they hold alert bodies and
//! downstream error snippets. Used when the spool is opened and when the writer reopens it.

use std::path::Path;

/// Creates the spool's folder, and any missing parent, readable by this user only (0700): the
/// spool holds alert bodies and downstream error snippets. An existing folder is left as it is.
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the spool file 0600 before redb opens it (redb would create it 0644 under the usual
/// umask), and takes group and world access away from an existing one.
pub(crate) fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}
