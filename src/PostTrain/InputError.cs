namespace PostTrain;

/// <summary>
/// Bad input from the user: a file, record, option or tensor that cannot be used. The message is
/// one line naming the file, line or row, and field. The CLI prints it and exits with code 2.
/// </summary>
public class InputError : Exception
{
    public InputError(string message) : base(message) { }
    public InputError(string message, Exception inner) : base(message, inner) { }

    /// <summary>
    /// The error for a file that File.Exists does not see: "PATH: file not found", or, when its
    /// directory is there but this user may not look into it, "PATH: permission denied (cannot
    /// read DIR)" (File.Exists is false for both).
    /// </summary>
    public static InputError FileNotFound(string path)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (!Directory.Exists(dir)) continue;
            try
            {
                _ = Directory.EnumerateFileSystemEntries(dir).Any();
            }
            catch (UnauthorizedAccessException)
            {
                return new InputError($"{path}: permission denied (cannot read {dir})");
            }
            break;
        }
        return new InputError($"{path}: file not found");
    }

    /// <summary>Formats "FILE:LINE: FIELD: message" (parts that are null are left out).</summary>
    public static InputError At(string? file, long? line, string? field, string message)
    {
        var where = file ?? "";
        if (line is not null) where += (where.Length > 0 ? ":" : "line ") + line;
        if (field is not null) where += (where.Length > 0 ? ": " : "") + field;
        return new InputError(where.Length > 0 ? $"{where}: {message}" : message);
    }
}
