// A short two-tone chime through WebAudio. Browsers allow audio only after a user gesture,
// so the page asks for one (a button) and then keeps the unlocked context.
let context = null;

export function enableSound() {
  context ??= new AudioContext();
  return context.resume().then(() => chime());
}

export function soundEnabled() {
  return context !== null && context.state === "running";
}

export function chime() {
  if (!soundEnabled()) return;
  const start = context.currentTime;
  for (const [offset, frequency] of [[0, 880], [0.25, 660]]) {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.2, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.001, start + offset + 0.22);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(start + offset);
    oscillator.stop(start + offset + 0.25);
  }
}
