import { card, mount } from "@example/ui";
import "./style.css";

const banner = "Blog";
mount(
  document.getElementById("app"),
  card(banner, "Notes on shipping fifty apps."),
  card("Parallel builds", "from @example/ui"),
  card("Cached builds", "from @example/ui"),
  card("Atomic deploys", "from @example/ui"),
);
