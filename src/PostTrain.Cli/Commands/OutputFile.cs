namespace PostTrain.Cli.Commands;

/// <summary>Writes a command's output to a file atomically (temp file, then rename), or to stdout.</summary>
public static class OutputFile
{
    public static void Write(string? path, TextWriter stdout, Action<TextWriter> write)
    {
        if (path is null)
        {
            write(stdout);
            stdout.Flush();
            return;
        }
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new InputError($"{path}: directory {dir} does not exist");
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        try
        {
            using (var writer = new StreamWriter(temp)) write(writer);
            File.Move(temp, full, overwrite: true);
        }
        catch (IOException e) when (e.Message.Contains(temp, StringComparison.Ordinal))
        {
            throw PostTrain.Checkpoints.AtomicDirectory.Renamed(e, temp, full); // name the file asked for (disk full), not the removed temporary one
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
