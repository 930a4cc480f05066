// Placeholder: the compile pipeline driver.
