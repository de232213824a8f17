namespace PostTrain;

/// <summary>
/// Checks an output path before any work is done, so that a path that cannot be written fails at
/// once with one line (an <see cref="InputError"/>) rather than after loading a model or training.
/// </summary>
public static class OutputPaths
{
    /// <summary>
    /// An output file: not an existing directory, its directory exists, and a file can be created
    /// there (checked by creating and removing a probe file; as root every directory is writable).
    /// </summary>
    public static void CheckFile(string path, string option = "--output")
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new InputError($"{option}: {path}: is a directory; give a file name");
        var dir = Path.GetDirectoryName(full)!;
        if (File.Exists(dir)) throw new InputError($"{option}: {path}: {dir} is a file, not a directory");
        if (!Directory.Exists(dir)) throw new InputError($"{option}: {path}: the directory {dir} does not exist");
        Probe(dir, option, path);
    }

    /// <summary>
    /// An output directory: not an existing file, and writable — the directory itself when it
    /// exists, else the nearest existing directory above it (where it will be created).
    /// </summary>
    public static void CheckDirectory(string path, string option = "--output")
    {
        var full = Path.GetFullPath(path.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar) is { Length: > 0 } p ? p : path);
        if (File.Exists(full)) throw new InputError($"{option}: {path}: is a file; give a directory");
        var dir = full;
        while (!Directory.Exists(dir))
        {
            if (File.Exists(dir)) throw new InputError($"{option}: {path}: {dir} is a file, not a directory");
            dir = Path.GetDirectoryName(dir);
            if (dir is null) return;
        }
        Probe(dir, option, path);
    }

    static void Probe(string dir, string option, string path)
    {
        var probe = Path.Combine(dir, $".posttrain-probe-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (UnauthorizedAccessException)
        {
            throw new InputError($"{option}: {path}: no permission to write in {dir}");
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && IsReadOnlyFileSystem(e))
        {
            throw new InputError($"{option}: {path}: {dir} is on a read-only file system");
        }
        finally
        {
            if (File.Exists(probe)) File.Delete(probe);
        }
    }

    static bool IsReadOnlyFileSystem(IOException e) => (e.HResult & 0xFFFF) == 30 || e.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase);
}
