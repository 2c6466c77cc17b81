import { expect, type Page } from "@playwright/test";

// A click before the WASM has hydrated the page is lost; retry until the
// theme toggle reacts, which proves hydration happened.
export async function waitForHydration(page: Page) {
  const isDark = () => page.evaluate(() => document.documentElement.classList.contains("dark"));
  const toggle = page.getByTestId("theme-toggle");
  const before = await isDark();
  await expect(async () => {
    await toggle.click();
    expect(await isDark()).toBe(!before);
  }).toPass({ timeout: 20_000 });
  // Put the theme back as it was.
  await toggle.click();
  expect(await isDark()).toBe(before);
}
