"""Where captures come from: saved files in a folder, and (later) the Hub's papers API and pages."""
