namespace PostTrain.Checkpoints;

/// <summary>
/// Writes a directory all at once: it is filled under a temporary name beside the target and
/// renamed into place only when complete, so an error or a kill never leaves a partial directory.
/// </summary>
public static class AtomicDirectory
{
    public static void Write(string target, bool overwrite, Action<string> fill)
    {
        target = Path.GetFullPath(target.TrimEnd(Path.DirectorySeparatorChar));
        var parent = Path.GetDirectoryName(target)!;
        bool exists = Directory.Exists(target);
        if (exists && Directory.EnumerateFileSystemEntries(target).Any() && !overwrite)
            throw new InputError($"{target}: output directory exists and is not empty");
        if (File.Exists(target)) throw new InputError($"{target}: output path is a file");
        Directory.CreateDirectory(parent);

        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            fill(temp);
        }
        catch (IOException e) when (e.Message.Contains(temp, StringComparison.Ordinal))
        {
            TryDelete(temp);
            throw Renamed(e, temp, target);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        string? old = null;
        if (exists)
        {
            old = Path.Combine(parent, $".{Path.GetFileName(target)}.old-{Guid.NewGuid():N}");
            Directory.Move(target, old);
        }
        Directory.Move(temp, target);
        if (old is not null) TryDelete(old);
    }

    /// <summary>
    /// The error of a write into the temporary directory (disk full, say), naming the path it was
    /// to have in the target instead: the temporary directory is gone when the message is read.
    /// </summary>
    public static IOException Renamed(IOException e, string temp, string target) =>
        new RenamedIOException(e.Message.Replace(temp, target, StringComparison.Ordinal), e);

    sealed class RenamedIOException : IOException
    {
        public RenamedIOException(string message, IOException inner) : base(message, inner) => HResult = inner.HResult;
    }

    static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
